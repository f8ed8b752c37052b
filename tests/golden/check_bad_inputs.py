#!/usr/bin/python3
"""Runs `sparsimix infer` on every malformed checkpoint of gen_vit.py: each must exit 1 (not
crash) with a one-line message that names the problem."""
import subprocess
import sys

EXPECT = {
    "bad_truncated": "truncated", "bad_short": "shorter than the 8-byte header", "bad_header_len": "exceeds the limit",
    "bad_json": "not valid JSON", "bad_dtype": "unsupported dtype 'Q4'", "bad_overlap": "overlapping",
    "bad_size": "bytes but data_offsets span", "bad_trailing": "trailing", "bad_missing": "missing [blocks.1.mlp.fc2.bias]",
    "bad_unexpected": "unexpected [blocks.0.attn.rel_pos]", "bad_shape": "blocks.0.mlp.fc1.weight is [5, 24], expected [96, 24]",
    "bad_nan": "non-finite", "bad_kind": "unknown kind 'transformer'", "bad_distilled": "distilled DeiT",
}


def main():
    exe, golden = sys.argv[1], sys.argv[2]
    failures = 0
    for name, fragment in EXPECT.items():
        r = subprocess.run([exe, "infer", "--model", f"{golden}/{name}.safetensors", "--input",
                            f"{golden}/vit_attn_input.safetensors", "--out", f"{golden}/{name}_out.safetensors"],
                           capture_output=True, text=True)
        lines = r.stderr.strip().splitlines()
        ok = r.returncode == 1 and len(lines) == 1 and fragment in lines[0] and lines[0].startswith("sparsimix: ")
        print(("ok   " if ok else "FAIL ") + f"{name}: rc {r.returncode}: {r.stderr.strip()}")
        failures += not ok
    print(f"{len(EXPECT) - failures} passed, {failures} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
