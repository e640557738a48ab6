"""The closing table a run prints on rank 0."""

from __future__ import annotations

from collections import Counter


def format_summary(summary: dict) -> str:
    digests_agree = len(set(summary["param_digests"])) == 1
    rows = [
        ("mode", f"{summary['mode']} (N={summary['quorum']} of P={summary['workers']}, b={summary['backups']})"
         if "quorum_bounds" not in summary else  # --backups auto: N changed from step to step
         f"{summary['mode']} (N chosen per step, mean {summary['quorum']:.2f} in {summary['quorum_bounds'][0]}.."
         f"{summary['quorum_bounds'][1]} of P={summary['workers']}, b={summary['backups']})"),
        ("model", summary["model"]),
        ("straggler", summary["straggler"]),
        ("steps", f"{summary['steps']} in {summary['wall_s']:.2f} s"),
        ("steps/s", f"{summary['steps_per_s']:.2f}"),
        ("dropped gradients", f"{summary['dropped_gradients']} ({100 * summary['dropped_fraction']:.1f}%)"),
        *([("test accuracy", f"{100 * summary['test_accuracy']:.2f}%")] if "test_accuracy" in summary else []),
        *([("test bits/byte", f"{summary['test_bits_per_byte']:.4f}")] if "test_bits_per_byte" in summary else []),
        ("test loss", f"{summary['test_loss']:.4f}"),
        ("replicas identical", "yes" if digests_agree else "NO: parameter digests differ"),
        *([("devices", _devices(summary["devices"]))] if "devices" in summary else []),
        ("run directory", summary["run_dir"]),
    ]
    if "servers" in summary:  # the ps-* modes: P counts the workers only
        rows.insert(1, ("servers", f"{summary['servers']} (ranks 0..{summary['servers'] - 1})"))
    width = max(len(k) for k, _ in rows)
    line = "-" * (width + 2 + max(len(v) for _, v in rows))
    return "\n".join([line, *(f"{k:<{width}}  {v}" for k, v in rows), line])


def _devices(devices: list[str]) -> str:
    """Where the ranks computed, e.g. "cpu x 4" or "cuda:0 x 2, cuda:1 x 2"."""
    return ", ".join(f"{d} x {n}" for d, n in sorted(Counter(devices).items()))
