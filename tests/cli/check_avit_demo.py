#!/usr/bin/python3
"""`sparsimix demo --avit --budget tiny` end to end (docs/report.md, "demo --avit"):
  1. a run writes the report keys check_avit_report.py checks, and leaves no state file;
  2. a second run into the same folder reuses every teacher and student (trains nothing) and
     reports the same numbers;
  3. a run into a new folder is killed (SIGKILL) in the middle of a training phase, as soon as
     that phase has written its state file; the rerun continues the phase from it ("resuming
     from ... .state") and reports the same numbers as the uninterrupted run.
usage: check_avit_demo.py SPARSIMIX_EXE SCRATCH_DIR CHECK_AVIT_REPORT_PY
"""
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time


def demo(exe, out, log, wait=True):
    p = subprocess.Popen([exe, "demo", "--avit", "--budget", "tiny", "--seed", "3", "--checkpoint-every", "10",
                          "--out", out], stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    return p.wait() if wait else p


def numbers(out):
    r = json.load(open(os.path.join(out, "report.json")))
    return [(l["name"], l["teacher_test_accuracy"], [s["test_accuracy"] for s in l["students"]])
            for l in r["avit"]["levels"]]


def main():
    exe, tmp, checker = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]), sys.argv[3]
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    problems = []
    first, killed = os.path.join(tmp, "avit"), os.path.join(tmp, "avit_killed")
    if demo(exe, first, os.path.join(tmp, "first.log")) != 0:
        sys.exit("FAIL the first run failed:\n" + open(os.path.join(tmp, "first.log")).read()[-2000:])
    if subprocess.run([sys.executable, checker, first, "2"]).returncode != 0:
        problems.append("the report misses keys (check_avit_report.py)")
    if glob.glob(os.path.join(first, "*.state")):
        problems.append(f"state files left in a finished run: {glob.glob(os.path.join(first, '*.state'))}")
    want = numbers(first)

    log = os.path.join(tmp, "reuse.log")
    if demo(exe, first, log) != 0:
        problems.append("the reusing run failed")
    else:
        text = open(log).read()
        if "reusing its result" not in text or ": training " in text:
            problems.append("the second run into the same folder trained again")
        if numbers(first) != want:
            problems.append("the reusing run reports other numbers")

    # Kill in the middle of the first A-ViT teacher's fine-tune (after the dense teacher and its
    # students, so a resumed phase sits between reused files and fresh ones).
    p = demo(exe, killed, os.path.join(tmp, "killed.log"), wait=False)
    deadline = time.time() + 600
    while p.poll() is None and time.time() < deadline and not glob.glob(os.path.join(killed, "teacher_beta*.state")):
        time.sleep(0.01)
    state = glob.glob(os.path.join(killed, "teacher_beta*.state"))
    if p.poll() is not None or not state:
        problems.append("the run ended before an A-ViT teacher wrote its state")
    else:
        p.send_signal(signal.SIGKILL)
        p.wait()
        log = os.path.join(tmp, "resumed.log")
        if demo(exe, killed, log) != 0:
            problems.append("the resumed run failed")
        else:
            text = open(log).read()
            if "(resuming from " + state[0] not in text:
                problems.append(f"the rerun did not resume from {state[0]}")
            if numbers(killed) != want:
                problems.append(f"the resumed run reports other numbers: {numbers(killed)} vs {want}")
            if glob.glob(os.path.join(killed, "*.state")):
                problems.append("state files left after the resumed run")
    for m in problems:
        print("FAIL " + m)
    print("demo avit ok" if not problems else f"{len(problems)} problems")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
