"""Data commands of `keras-dae`: synthetic fixtures, preparing caches."""

from pathlib import Path

import click

from keras_dae_cli.common import import_library


@click.command("synth")
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Root directory of the MUSDB18-HQ-style tree to write.")
@click.option("--tracks", "num_tracks", type=click.IntRange(min=1), required=True,
              help="Number of tracks.")
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True), required=True,
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
