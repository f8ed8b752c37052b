#!/usr/bin/python3
"""Kill-and-resume (docs/errors.md, "Resuming"): `sparsimix train --checkpoint-every N` killed
with SIGKILL at several points and stopped once with SIGTERM, then resumed with --resume each
time, must end with the same checkpoint, byte for byte, as an uninterrupted run of the same
options (one thread: the test build has no OpenMP). A resume with other options is refused.
Then `distill --prune` (four phases: stage1, stage2, regularise, finetune, each with its own
state file) is stopped in stage 1 (SIGKILL), stage 2 (SIGTERM) and the regularised training
(SIGKILL), resumed each time, and must end with the uninterrupted run's student.

usage: check_resume.py SPARSIMIX_EXE SCRATCH_DIR
"""
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time

STEPS = "500"


def state_step(path):
    """The step recorded in a training state file, or -1 while there is none."""
    try:
        with open(path, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(n))
        return json.loads(header["__metadata__"]["sparsimix.fit_state"])["step"]
    except (OSError, ValueError, KeyError, struct.error):
        return -1


def stop_at(p, state, at, how):
    """Sends `how` to p once `state` records step >= at; False when p ended first."""
    deadline = time.time() + 300
    while state_step(state) < at and p.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    if p.poll() is not None:
        return False
    p.send_signal(signal.SIGKILL if how == "SIGKILL" else signal.SIGTERM)
    return True


def train(exe, out, extra, log):
    return subprocess.Popen([exe, "train", "--budget", "tiny", "--steps", STEPS, "--seed", "4", "--augment", "--out", out] + extra,
                            stdout=subprocess.DEVNULL, stderr=open(log, "w"))


def distill(exe, teacher, out, extra, log):
    return subprocess.Popen([exe, "distill", "--teacher", teacher, "--budget", "tiny", "--layers", "1", "--mixer", "mh_lstm",
                             "--stage1-steps", "80", "--stage2-steps", "60", "--prune", "0.5", "--seed", "3",
                             "--out", out] + extra, stdout=subprocess.DEVNULL, stderr=open(log, "w"))


def check_distill_resume(exe, tmp, teacher, problems):
    c, d = os.path.join(tmp, "c.safetensors"), os.path.join(tmp, "d.safetensors")
    if distill(exe, teacher, c, [], os.path.join(tmp, "c.log")).wait() != 0:
        problems.append("the uninterrupted distill failed")
        return
    resume = ["--checkpoint-every", "5", "--resume"]
    stops = [("stage1", 30, "SIGKILL"), ("stage2", 20, "SIGTERM"), ("regularise", 10, "SIGKILL")]
    for i, (phase, at, how) in enumerate(stops):
        log = os.path.join(tmp, f"d{i}.log")
        p = distill(exe, teacher, d, resume, log)
        state = f"{d}.{phase}.state"
        if not stop_at(p, state, at, how):
            problems.append(f"distill run {i} finished before its stop in {phase}")
            return
        rc = p.wait()
        text = open(log).read()
        if i > 0 and f"distill: resuming {stops[i - 1][0]} from" not in text:
            problems.append(f"distill run {i} did not resume {stops[i - 1][0]}")
        if how == "SIGTERM" and (rc != 1 or "sparsimix: interrupted: fit: stopped by signal 15" not in text):
            problems.append(f"distill SIGTERM: exit {rc}, log {text.strip()[-300:]!r}")
        print(f"distill stop {i} ({how}) in {phase} at state step {state_step(state)}")
    if distill(exe, teacher, d, resume, os.path.join(tmp, "d_final.log")).wait() != 0:
        problems.append("the final distill resume failed")
    elif open(c, "rb").read() != open(d, "rb").read():
        problems.append("the resumed distill's student differs from the uninterrupted run's")
    left = [f for f in os.listdir(tmp) if f.startswith("d.safetensors.") and f.endswith(".state")]
    if left:
        problems.append(f"state files left after the distill completed: {left}")


def main():
    exe, tmp = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    a, b = os.path.join(tmp, "a.safetensors"), os.path.join(tmp, "b.safetensors")
    state = b + ".state"
    problems = []
    if train(exe, a, [], os.path.join(tmp, "a.log")).wait() != 0:
        sys.exit("the uninterrupted run failed")

    resume = ["--checkpoint-every", "10", "--resume"]
    stops = [("SIGKILL", 60), ("SIGKILL", 200), ("SIGTERM", 280), ("SIGKILL", 430)]
    last = -1
    for i, (how, at) in enumerate(stops):
        log = os.path.join(tmp, f"b{i}.log")
        p = train(exe, b, resume, log)
        if not stop_at(p, state, at, how):
            problems.append(f"run {i} finished before its stop at step {at}")
            break
        rc = p.wait()
        step = state_step(state)
        text = open(log).read()
        if i > 0 and "train: resuming from" not in text:
            problems.append(f"run {i} did not resume")
        if how == "SIGTERM":
            if rc != 1 or "sparsimix: interrupted: fit: stopped by signal 15" not in text:
                problems.append(f"SIGTERM: exit {rc}, log {text.strip()[-300:]!r}")
        if step <= last:
            problems.append(f"run {i}: the state did not advance ({last} -> {step})")
        last = step
        print(f"stop {i} ({how}) at state step {step}")
    if not problems:
        # Other options than the state's: refused, the state kept.
        r = subprocess.run([exe, "train", "--budget", "tiny", "--steps", STEPS, "--seed", "5", "--augment", "--out", b] + resume,
                           capture_output=True, text=True)
        if r.returncode != 1 or "written by a run with other settings" not in r.stderr or state_step(state) != last:
            problems.append(f"a resume with another seed: exit {r.returncode}, {r.stderr.strip()!r}")
        final = train(exe, b, resume, os.path.join(tmp, "b_final.log")).wait()
        if final != 0:
            problems.append(f"the final resume failed: exit {final}")
        elif open(a, "rb").read() != open(b, "rb").read():
            problems.append("the resumed run's checkpoint differs from the uninterrupted run's")
        if os.path.exists(state):
            problems.append("the state file was left after the run completed")
    if not problems:
        check_distill_resume(exe, tmp, a, problems)
    for p in problems:
        print("FAIL " + p)
    print("resume ok" if not problems else f"{len(problems)} problems")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
