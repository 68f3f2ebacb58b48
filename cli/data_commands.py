"""Data commands of `keras-dae`: synthetic fixtures, the frame cache, the environment."""

from pathlib import Path

import click

from keras_dae_cli.common import (
    STATE,
    FiniteFloatRange,
    data_options,
    import_library,
    spectral_config,
    spectral_options,
)


@click.command("synth")
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Root directory of the MUSDB18-HQ-style tree to write.")
@click.option("--tracks", "num_tracks", type=click.IntRange(min=1), required=True,
              help="Number of tracks.")
@click.option("--seconds", type=FiniteFloatRange(min=0, min_open=True), required=True,
              help="Length of each track.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Same seed, same tracks.")
@click.option("--rate", type=click.IntRange(min=1), default=44100, show_default=True,
              help="Sample rate in Hz.")
@click.option("--subset", type=click.Choice(("train", "test")), default="train", show_default=True)
def synth(out, num_tracks, seconds, seed, rate, subset):
    """Write synthetic test tracks (a fixture, not music) as MUSDB18-HQ WAVs.

    Writes OUT/SUBSET/synthetic-000/{mixture,drums,bass,other,vocals}.wav and
    so on, which `musdb.DB(root=OUT, is_wav=True)` reads.
    """
    import_library()
    from keras_dae.data.synthetic import write_synthetic_musdb

    write_synthetic_musdb(out, num_tracks=num_tracks, seconds=seconds, rate=rate, seed=seed, subset=subset)
    click.echo(f"wrote {num_tracks} tracks to {Path(out) / subset}")


@click.command("prepare")
@data_options()
@spectral_options
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Directory of the frame cache (index.json + TFRecord shards).")
@click.option("--worker-index", type=click.IntRange(min=0), default=0, show_default=True,
              help="This worker's part of the tracks (track i goes to worker i %% N).")
@click.option("--num-workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Workers preparing the same --out together.")
@click.option("--overwrite", is_flag=True, help="Delete a previous cache in --out first.")
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="Shards written at once, each in its own process reading one track chunk by chunk "
                   "(default: one per 2 usable cores; 1: one after another in this process).")
def prepare(root, is_wav, subset, split, num_bins, window_length, fft_length, hop_length,
            out, worker_index, num_workers, overwrite, jobs):
    """Write the spectrogram frames of MUSDB tracks as a sharded TFRecord cache.

    One shard per track, each written under a temporary name and renamed when
    whole; re-running skips complete shards. Train from it with
    `keras-dae train --prepared OUT`. --jobs N writes N shards at once in
    worker processes (the same shards), within this worker's part.
    """
    if worker_index >= num_workers:
        raise click.BadParameter(
            f"{worker_index} is not below --num-workers {num_workers}.", param_hint="--worker-index"
        )
    import_library()
    from keras_dae.data.prepare import prepare_dataset
    from keras_dae.data.tracks import list_tracks

    config = spectral_config(num_bins, window_length, fft_length, hop_length)
    tracks = list_tracks(root, is_wav=is_wav, subsets=subset, split=split)
    selection = {"root": str(root) if root else None, "is_wav": is_wav, "subset": subset, "split": split}
    index = prepare_dataset(
        tracks, out, spectral=config, worker_index=worker_index, num_workers=num_workers,
        selection=selection, overwrite=overwrite, progress=not STATE["quiet"], jobs=jobs,
    )
    done = sum(shard["frames"] is not None for shard in index["shards"])
    state = "complete" if index["complete"] else "incomplete (other workers' shards missing)"
    click.echo(
        f"{out}: {done} of {len(index['shards'])} shards, {index['total_frames']:,} frames, {state}"
    )


@click.command("info")
def info():
    """Print versions, the audio backend in use, ffmpeg and devices."""
    import_library()
    from keras_dae.info import environment

    rows = environment()
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        click.echo(f"{name:<{width}}  {value}")
