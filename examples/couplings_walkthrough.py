# %% [markdown]
# # What did the model learn? A walkthrough of the neural couplings
#
# Loads a trained keras-dae run, distils its neural couplings C (the single
# N x N matrix whose product with a mixture frame best reproduces the model's
# output on real frames), and draws it. A bright diagonal means per-bin
# (scalar) filtering; energy away from it means the model uses structure
# across frequencies.
#
# Cells are marked with `# %%`: open the file in VS Code or Jupyter (jupytext)
# and run them one by one, or run it whole:
#
#     python examples/couplings_walkthrough.py runs/demo/runs/sf --out runs/walkthrough
#
# `make demo` leaves three runs in `runs/demo/runs/` (dae, deep-dae, sf).

# %%
import argparse
import sys
from pathlib import Path

import numpy as np

from keras_dae import describe_model
from keras_dae.couplings import figures, metrics
from keras_dae.couplings import track_frame_set
from keras_dae.couplings import distill
from keras_dae.data.tracks import list_tracks
from keras_dae.separation import resolve

parser = argparse.ArgumentParser(description="Distil and draw the couplings of one run.")
parser.add_argument("run", nargs="?", default="runs/demo/runs/sf", help="a run directory or .keras file")
parser.add_argument("--out", type=Path, default=Path("runs/walkthrough"))
parser.add_argument("--root", help="MUSDB root for the frames (default: the run's demo data, else the clip)")
parser.add_argument("--is-wav", action="store_true")
args = parser.parse_args(sys.argv[1:] if "ipykernel" not in sys.modules else [])

# %% [markdown]
# ## 1. Load the run: the model and the spectral settings it was trained with

# %%
model, spectral = resolve(args.run)
print(describe_model(model))
print(f"{spectral.num_bins} bins of a {spectral.fft_length}-point FFT: 0 to {spectral.bin_frequencies()[-1]:.0f} Hz")

# %% [markdown]
# ## 2. Mixture frames to examine it on
#
# The test tracks of the run's data: a reproduction's demo tracks sit beside
# its `runs/` directory; otherwise the embedded 6-second clip (few frames:
# C may be poorly determined, and the calibration below says so).

# %%
demo = Path(args.run).resolve().parent.parent / "data"
root, is_wav = (args.root, args.is_wav) if args.root else ((demo, True) if demo.is_dir() else (None, False))
frames = track_frame_set(list_tracks(root, is_wav=is_wav, subsets="test"), spectral=spectral, max_frames=5000)
print(f"{len(frames.fit)} frames to fit C, {len(frames.held_out)} held out")

# %% [markdown]
# ## 3. Distil C with `model.fit` (L1 loss, Adam), the teacher frozen

# %%
C, history = distill(model, frames.fit, schedule="converge")
print(f"fitted in {len(history['loss'])} epochs; relative L1 loss {history['loss'][-1]:.3f}")

# %% [markdown]
# ## 4. How diagonal is it, and can these frames tell?
#
# The calibration fits the same solver to a known diagonal teacher (random
# per-bin gains) on the same frames: the diagonal energy ratio it reaches is
# the most a truly per-bin model could show here.

# %%
from keras_dae.couplings import calibration  # noqa: E402

ratio = metrics.diagonal_energy_ratio(C)
check = calibration(frames.fit, {"solver": "fit", "schedule": "converge"}, seed=0)
print(f"diagonal energy ratio {ratio:.3f}; energy within 3 bins of the diagonal {metrics.band_energy_ratio(C, 3):.3f}")
print(f"a diagonal teacher on these frames reaches {check['diagonal_energy_ratio']:.3f}")
print(f"mean |offset| from the diagonal: {metrics.mean_absolute_offset(C):.1f} bins")

# %% [markdown]
# ## 5. Draw it: C as an image, and its energy by distance from the diagonal

# %%
args.out.mkdir(parents=True, exist_ok=True)
notes = [f"diagonal energy {ratio:.3f} (a diagonal teacher: {check['diagonal_energy_ratio']:.3f})"]
name = describe_model(model)["arch"]
written = figures.plot_matrix(C, args.out / "couplings", f"{name} couplings C", spectral=spectral, notes=notes)
written += figures.plot_offsets(C, args.out / "offsets", f"{name}: energy by offset", spectral=spectral, notes=notes)
np.save(args.out / "couplings.npy", C)
print("wrote", ", ".join(str(path) for path in written))
