#!/usr/bin/python3
"""`sparsimix demo --budget tiny` end to end (docs/report.md):
  1. an uninterrupted run writes the report check_report.py checks, and leaves neither
     OUT.partial nor the pieces a resumed run would reuse (student checkpoints, pieces.jsonl,
     state files);
  2. a run into another folder is killed (SIGKILL) twice: while the teacher trains (as soon as
     its state file exists), then, rerun, while a student's stage trains (after at least one
     student finished); neither kill touches OUT, and each rerun continues OUT.partial (the
     teacher's phase "resuming from" its state, then the finished teacher and students reused).
     The final report has the uninterrupted run's numbers, as the same seed must give.
  3. the resumed run has --keep-students: each variant's student is left in OUT and
     `sparsimix eval` on it gives the test accuracy the report states for that variant.
usage: check_demo.py SPARSIMIX_EXE SCRATCH_DIR CHECK_REPORT_PY
"""
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time


def demo(exe, out, log, wait=True, extra=()):
    p = subprocess.Popen([exe, "demo", "--budget", "tiny", "--seed", "3", "--checkpoint-every", "5", "--out", out,
                          *extra],
                         stdout=open(log + ".out", "w"), stderr=open(log, "w"))
    return p.wait() if wait else p


def numbers(out):
    r = json.load(open(os.path.join(out, "report.json")))
    return [(v["name"], v["test_accuracy"], v["val_accuracy"], v["nonzero_params"]) for v in r["variants"]] + \
        [r["teacher"]["test_accuracy"], r["sparsity"]["ranking"]]


def leftovers(out):
    return [os.path.basename(f) for f in glob.glob(os.path.join(out, "*"))
            if os.path.basename(f).startswith("student_") or f.endswith((".state", "pieces.jsonl"))]


def kill_when(exe, out, log, ready, what, problems):
    """Starts a run and SIGKILLs it once ready() is true; False when it ended first."""
    p = demo(exe, out, log, wait=False)
    deadline = time.time() + 600
    while p.poll() is None and time.time() < deadline and not ready():
        time.sleep(0.005)
    if p.poll() is not None:
        problems.append(f"the run ended before {what}")
        return False
    p.send_signal(signal.SIGKILL)
    p.wait()
    return True


def check_kept_students(exe, out, kept, problems):
    """--keep-students: one checkpoint per variant, each evaluating to its reported accuracy."""
    report = json.load(open(os.path.join(out, "report.json")))
    variants = {v["name"]: v for v in report["variants"]}
    want = sorted("student_" + name.replace("/", "_") + ".safetensors" for name in variants)
    if kept != want:
        problems.append(f"--keep-students kept {kept}, expected {want}")
        return
    images = json.load(open(os.path.join(out, "config.json")))["test_images"]
    for name, v in variants.items():
        path = os.path.join(out, "student_" + name.replace("/", "_") + ".safetensors")
        r = subprocess.run([exe, "eval", "--model", path, "--limit", str(images)], capture_output=True, text=True)
        if r.returncode != 0:
            problems.append(f"eval of {path} failed: {r.stderr[-500:]}")
            continue
        got = json.loads(r.stdout)["test_accuracy"]
        if abs(got - v["test_accuracy"]) > 1e-9:
            problems.append(f"{name}: the kept student evaluates to {got}, the report says {v['test_accuracy']}")


def main():
    exe, tmp, checker = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]), sys.argv[3]
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    problems = []
    first, killed = os.path.join(tmp, "demo_a"), os.path.join(tmp, "demo_b")
    if demo(exe, first, os.path.join(tmp, "a.log")) != 0:
        sys.exit("FAIL the first run failed:\n" + open(os.path.join(tmp, "a.log")).read()[-2000:])
    if subprocess.run([sys.executable, checker, first, "0.5"]).returncode != 0:
        problems.append("the report misses keys or the teacher is near chance (check_report.py)")
    if os.path.exists(first + ".partial"):
        problems.append("a finished run left OUT.partial")
    if leftovers(first):
        problems.append(f"a finished run left its resumable pieces: {leftovers(first)}")
    want = numbers(first)

    partial = killed + ".partial"
    teacher_state = os.path.join(partial, "teacher.safetensors.state")
    if kill_when(exe, killed, os.path.join(tmp, "b1.log"), lambda: os.path.exists(teacher_state),
                 "the teacher wrote its state", problems):
        if os.path.exists(killed):
            problems.append("a killed run created OUT")

        def student_training():
            # A student counts as finished once pieces.jsonl lists it (its checkpoint alone is
            # not enough: a kill between the two redoes it), and another one must have a state.
            try:
                with open(os.path.join(partial, "pieces.jsonl")) as f:
                    done = [json.loads(line)["key"] for line in f if line.endswith("\n")]
            except (OSError, ValueError, KeyError):
                return False
            done = [k for k in done if k != "teacher"]
            states = glob.glob(os.path.join(partial, "student_*.state"))
            mine = tuple(os.path.join(partial, "student_" + k.replace("/", "_") + ".safetensors") for k in done)
            return done and any(not st.startswith(mine) for st in states)
        log2 = os.path.join(tmp, "b2.log")
        if kill_when(exe, killed, log2, student_training, "a student finished and the next one wrote its state",
                     problems):
            text = open(log2).read()
            if "continuing the unfinished run" not in text or "(resuming from " + teacher_state not in text:
                problems.append(f"the second run did not resume the teacher from {teacher_state}")
            log3 = os.path.join(tmp, "b3.log")
            if demo(exe, killed, log3, extra=("--keep-students",)) != 0:
                problems.append("the resumed run failed:\n" + open(log3).read()[-2000:])
            else:
                text = open(log3).read()
                if "teacher: reusing" not in text or ": reusing " + partial not in text.replace("teacher: reusing", ""):
                    problems.append("the third run did not reuse the finished teacher and students")
                if "(resuming from " not in text:
                    problems.append("the third run did not resume the student's stage from its state")
                got = numbers(killed)
                if got != want:
                    problems.append(f"the resumed run reports other numbers:\n  {got}\n  vs {want}")
                kept = sorted(leftovers(killed))
                if os.path.exists(partial) or any(not f.endswith(".safetensors") for f in kept):
                    problems.append(f"the resumed run left OUT.partial or pieces: {kept}")
                check_kept_students(exe, killed, kept, problems)
    for m in problems:
        print("FAIL " + m)
    print("demo ok" if not problems else f"{len(problems)} problems")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
