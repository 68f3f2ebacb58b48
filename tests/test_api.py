"""The Python surface: what `keras_dae` exports, the `spectral=` convention, the argument checks."""

import inspect

import numpy as np
import pytest

import keras_dae
from keras_dae import checks


def test_the_package_exports_what_a_user_calls():
    for name in ("build_model", "SkipFilter", "SpectralConfig", "train", "distill", "examine", "separate", "evaluate",
                 "export_model", "reproduce", "describe_model", "ARCHITECTURES"):
        assert name in keras_dae.__all__ and hasattr(keras_dae, name), name
    assert callable(keras_dae.reproduce)
    from keras_dae.reproduce import PRESETS  # the subpackage behind it is still importable

    assert "quick" in PRESETS


def _public_functions_taking_spectral_settings():
    from keras_dae.couplings import prepared_frame_set, track_frame_set
    from keras_dae.data.pipeline import musdb_frames
    from keras_dae.data.prepare import iter_shards, prepare_dataset, prepared_frames, read_index, track_frames
    from keras_dae.export import build_archive, separate_graph
    from keras_dae.separation import resolve, separate_blocks, separate_file, separate_files, separate_waveform

    return [keras_dae.separate, keras_dae.evaluate, keras_dae.examine, keras_dae.export_model, keras_dae.train,
            resolve, separate_waveform, separate_blocks, separate_file, separate_files, track_frame_set,
            prepared_frame_set, musdb_frames, prepare_dataset, track_frames, read_index, iter_shards, prepared_frames,
            build_archive, separate_graph]


@pytest.mark.parametrize("function", _public_functions_taking_spectral_settings(), ids=lambda f: f.__name__)
def test_spectral_settings_are_the_keyword_spectral(function):
    parameters = inspect.signature(function).parameters
    assert parameters["spectral"].kind is inspect.Parameter.KEYWORD_ONLY
    assert "config" not in parameters  # `config` means a run's record (config.json)


def test_train_takes_every_setting_by_name_with_its_default():
    from keras_dae.training import Settings

    parameters = inspect.signature(keras_dae.train).parameters
    assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    for field in Settings.__dataclass_fields__.values():
        assert parameters[field.name].default == field.default, field.name


@pytest.mark.parametrize(
    "check, value, message",
    [
        (checks.positive_int, 0, "size must be a positive integer. Received: size=0"),
        (checks.positive_int, True, "Received: size=True"),
        (checks.positive_int, 2.0, "Received: size=2.0"),
        (checks.non_negative_int, -1, "size must be a non-negative integer. Received: size=-1"),
        (checks.positive_number, float("inf"), "size must be positive and finite. Received: size=inf"),
        (checks.positive_number, None, "Received: size=None"),
    ],
)
def test_checks_name_the_parameter_and_the_value(check, value, message):
    with pytest.raises(ValueError) as error:
        check("size", value)
    assert message in str(error.value)


def test_checks_accept_what_they_promise():
    assert checks.positive_int("n", np.int64(3)) == 3
    assert checks.positive_int("n", None, optional=True) is None
    assert checks.non_negative_int("n", 0) == 0
    assert checks.positive_number("x", np.float32(0.5)) == np.float32(0.5)
    assert checks.one_of("mask", "soft", ("subtract", "soft")) == "soft"
    with pytest.raises(ValueError, match=r"Unknown mask 'hard'; valid ones are subtract, soft\. Received: mask='hard'"):
        checks.one_of("mask", "hard", ("subtract", "soft"))
    with pytest.raises(ValueError, match="Unknown mask"):
        checks.one_of("mask", ["unhashable"], {"subtract": 1})
