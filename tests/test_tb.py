"""TensorBoard events written without TensorFlow, read back with TensorBoard's own reader."""

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata as hp_metadata

from mnist_suite.tb import SummaryWriter


def read(logdir):
    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_scalars_images_and_hparams_round_trip(tmp_path):
    with SummaryWriter(tmp_path) as w:
        for step in range(5):
            w.scalars({"loss": 1.0 / (step + 1), "acc": step / 10}, step, prefix="epoch/")
        w.scalar("lr", 0.5, 0)
        w.image("digit", np.linspace(0, 1, 28 * 28).reshape(28, 28), step=3)
        w.hparams({"lr": 0.1, "batch_size": 32}, trial_id="t0")
    acc = read(tmp_path)
    tags = acc.Tags()
    assert set(tags["scalars"]) == {"epoch/loss", "epoch/acc", "lr"}
    losses = acc.Scalars("epoch/loss")
    assert [e.step for e in losses] == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(
        [e.value for e in losses], [1, 1 / 2, 1 / 3, 1 / 4, 1 / 5], rtol=1e-6
    )
    (image,) = acc.Images("digit")
    assert (image.step, image.width, image.height) == (3, 28, 28)
    assert image.encoded_image_string.startswith(b"\x89PNG")
    content = acc.PluginTagToContent(hp_metadata.PLUGIN_NAME)
    assert hp_metadata.SESSION_START_INFO_TAG in set(content)
    start = hp_metadata.parse_session_start_info_plugin_data(
        content[hp_metadata.SESSION_START_INFO_TAG]
    )
    assert start.hparams["lr"].number_value == 0.1


def test_event_file_is_complete_after_close(tmp_path):
    w = SummaryWriter(tmp_path)
    w.scalar("x", 1.0, 0)
    w.close()
    w.close()  # idempotent
    assert len(read(tmp_path).Scalars("x")) == 1
