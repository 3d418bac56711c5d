"""Smoke test of train_toy2d_flow.py: each mode (flow, then reflow and cm from that flow model) trains for a few
iterations on the CPU, writes a toy2d.safetensors with its scheduler config, and its loss falls.

Run: OMP_NUM_THREADS=1 /usr/bin/python3 tools/train/test_toy2d_flow.py   (about a minute on one core)
(Not run by CI, which has no PyTorch: the Go side checks the shipped files, tools/diffuse/toyfew_test.go.)
"""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import st  # noqa: E402


def run(out, *args):
    cmd = [sys.executable, os.path.join(HERE, "train_toy2d_flow.py"), "--threads", "1", "--batch", "256",
           "--log-every", "20", "--n-samples", "64", "--out", out] + list(args)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(out, "train_info.json")) as f:
        info = json.load(f)
    _, meta = st.load_file_with_metadata(os.path.join(out, "toy2d.safetensors"))
    return info, json.loads(meta["config"])


def main():
    with tempfile.TemporaryDirectory() as d:
        flow = os.path.join(d, "flow")
        info, cfg = run(flow, "--mode", "flow", "--steps", "200")
        assert info["final_loss"] < 0.9 * info["first_loss"], info
        assert cfg["scheduler"]["_class_name"] == "FlowMatchEulerDiscreteScheduler", cfg
        teacher = os.path.join(flow, "toy2d.safetensors")
        info, cfg = run(os.path.join(d, "reflow"), "--mode", "reflow", "--teacher", teacher, "--steps", "100",
                        "--pairs", "2000", "--pair-steps", "4")
        assert info["final_loss"] < info["first_loss"], info
        info, cfg = run(os.path.join(d, "cm"), "--mode", "cm", "--teacher", teacher, "--steps", "100")
        assert info["final_loss"] < info["first_loss"], info
        s = cfg["scheduler"]
        assert s["_class_name"] == "CMStochasticIterativeScheduler" and s["clip_denoised"] is False, s
    print("ok")


if __name__ == "__main__":
    main()
