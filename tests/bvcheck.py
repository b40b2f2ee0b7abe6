"""The check counter and the bvtool runner the Python reference tests share
(test_dynamics.py, test_varsplit.py): set BV to the binary, call check(), read
checks and failed at the end."""
import subprocess
import sys

BV = "bvtool"
checks = failed = 0


def check(cond, msg):
    global checks, failed
    checks += 1
    if not cond:
        failed += 1
        print("FAIL:", msg)


def bvtool(*args):
    p = subprocess.run([BV, *args], capture_output=True, text=True)
    if p.returncode != 0:
        print("FAIL: bvtool", " ".join(args), "exit", p.returncode, p.stderr.strip())
        sys.exit(1)
    return p.stdout
