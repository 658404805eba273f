"""`python -m bench overhead`: the paper's Table 9 analogue, :func:`vgps.eval.overhead.measure`
for every modality, printed and saved under ``artifacts/<profile>/timing/``."""
from __future__ import annotations

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import pandas as pd  # noqa: E402

from vgps.eval.overhead import MODALITIES, measure  # noqa: E402


def main() -> pd.DataFrame:
    from vgps.plotting import save_table, to_markdown
    from vgps.paths import artifacts_dir
    df = pd.concat([measure(m) for m in MODALITIES], ignore_index=True)
    print(f"jax {jax.__version__}, {os.cpu_count()} CPU cores, B=1, median of interleaved reps")
    print(to_markdown(df, ".3f"))
    # timings differ run to run: kept out of figures/ (whose manifest must hash identically)
    save_table(df, artifacts_dir(os.environ.get("VGPS_PROFILE", "default"), "timing"), "table9_overhead")
    return df


if __name__ == "__main__":
    main()
