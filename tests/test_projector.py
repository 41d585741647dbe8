"""`embedbeam projector`: files that TensorBoard's own projector plugin serves back."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
from tensorboard.plugins import base_plugin
from tensorboard.plugins.projector.projector_plugin import ProjectorPlugin
from werkzeug import test as werkzeug_test
from werkzeug import wrappers

from embedbeam.pipeline import cli
from embedbeam.pipeline.queries.table import load_table

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def logdir(tmp_path_factory, digits_table):
    logdir = tmp_path_factory.mktemp("projector")
    flags = ["--embeddings", str(digits_table), "--logdir", str(logdir), "--max-rows", "300"]
    assert cli.main(["projector", *flags]) == 0
    return logdir


def _projector_client(logdir) -> werkzeug_test.Client:
    """TensorBoard's projector plugin over `logdir`, as `tensorboard --logdir` builds it."""
    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(logdir))
    context = base_plugin.TBContext(
        logdir=str(logdir),
        data_provider=data_provider.MultiplexerDataProvider(multiplexer, str(logdir)),
    )
    plugin = ProjectorPlugin(context)
    routes = plugin.get_plugin_apps()

    def app(environ, start_response):
        request = wrappers.Request(environ)
        return routes[request.path](environ, start_response)

    return werkzeug_test.Client(app, wrappers.Response)


def test_tensorboard_serves_the_vectors_labels_and_sprite(logdir, digits_table):
    client = _projector_client(logdir)
    table = load_table(str(digits_table))
    first_ids = sorted(table.ids)[:300]

    runs = client.get("/runs").json
    config = client.get("/info?run=.").json
    tensor = client.get("/tensor?run=.&name=image")
    metadata = client.get("/metadata?run=.&name=image").get_data(as_text=True).splitlines()
    sprite = Image.open(io.BytesIO(client.get("/sprite_image?run=.&name=image").data))

    assert "." in runs
    [embedding] = config["embeddings"]
    assert embedding["tensorName"] == "image" and embedding["sprite"]["singleImageDim"] == [28, 28]
    vectors = np.frombuffer(tensor.data, np.float32).reshape(300, -1)
    assert metadata[0].split("\t") == ["label", "modality", "cluster_id", "id", "uri"]
    rows = [line.split("\t") for line in metadata[1:]]
    assert [row[3] for row in rows] == first_ids  # the smallest ids, in order
    assert {row[1] for row in rows} == {"image"}
    expected = table.embeddings[[table.ids.index(id_) for id_ in first_ids]]
    np.testing.assert_allclose(vectors, expected, rtol=1e-6)
    assert [row[0] for row in rows] == [table.labels[table.ids.index(i)] for i in first_ids]
    assert sprite.size == (18 * 28, 18 * 28)  # ceil(sqrt(300)) tiles a side


def test_sprite_tiles_show_the_digits_in_row_order(logdir, digits_table):
    sheet = np.asarray(Image.open(logdir / "image" / "sprite.png"))
    first_tile, last_tile = sheet[:28, :28], sheet[16 * 28 : 17 * 28, 11 * 28 : 12 * 28]  # row 299

    assert first_tile.max() > 200 and last_tile.max() > 200  # ink present
    assert sheet[17 * 28 :, :].max() == 0  # tiles past the last row stay black
