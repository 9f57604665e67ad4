import json

import numpy as np
import pytest

from napari_rockseg.engine import io
from napari_rockseg.engine.classes import SHALE, ClassScheme, load_scheme
from napari_rockseg.engine.errors import SchemeError


def test_codec_round_trip_on_real_labels(test_pair):
    labels = io.read_labels(test_pair[1], SHALE)
    assert set(np.unique(labels)) == {1, 2, 3, 4}
    # fractions of the 688 evaluated rows given in the dataset README
    frac = np.bincount(labels[:688].ravel(), minlength=5)[1:] / labels[:688].size
    np.testing.assert_allclose(frac, [0.797, 0.091, 0.012, 0.100], atol=0.001)
    rgb = SHALE.encode_colors(labels)
    assert tuple(rgb[labels == 2][0]) == (255, 0, 0)
    assert np.array_equal(SHALE.decode_colors(rgb), labels)


def test_custom_scheme_from_json(tmp_path):
    path = tmp_path / "scheme.json"
    path.write_text(
        json.dumps(
            {
                "classes": [
                    {"name": "pore", "color": "#0000ff"},
                    {"name": "quartz", "color": "#ff0000"},
                ],
                "rest": None,
            }
        )
    )
    scheme = load_scheme(path)
    assert scheme.names == ("pore", "quartz") and scheme.labels == (1, 2)
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 2] = 255
    rgb[0, 0] = (255, 0, 0)
    labels = scheme.decode_colors(rgb)
    assert labels[0, 0] == 2 and (labels.ravel()[1:] == 1).all()
    assert ClassScheme.from_dict(scheme.to_dict()) == scheme


def test_unknown_colour_is_an_error_naming_it():
    scheme = ClassScheme(("pore", "quartz"), ((0, 0, 255), (255, 0, 0)), rest=None)
    rgb = np.zeros((5, 6, 3), np.uint8)
    rgb[..., 2] = 255
    rgb[3, 4] = (1, 2, 3)
    with pytest.raises(SchemeError, match=r"#010203 \(1 pixels, first at row 3, column 4\)"):
        scheme.decode_colors(rgb)


def test_rest_class_takes_unlisted_colours():
    rgb = np.full((3, 3, 3), 77, np.uint8)
    rgb[1, 1] = (0, 255, 0)
    labels = SHALE.decode_colors(rgb)
    assert labels[1, 1] == 3 and (labels[0] == 1).all()


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "not valid JSON"),
        (
            '{"classes": [{"name": "a", "color": "#000000"}, {"name": "A", "color": "#ffffff"}]}',
            "appears twice",
        ),
        (
            '{"classes": [{"name": "a", "color": "#000000"}, {"name": "b", "color": "#000000"}]}',
            "used by two",
        ),
        ('{"classes": [{"name": "a", "color": "red"}]}', "#rrggbb"),
        ('{"classes": [{"name": "a", "color": "#000000"}], "rest": "b"}', "not one of the classes"),
        ('{"classes": []}', "at least one class"),
        ("[1, 2]", '"classes" list'),
    ],
)
def test_malformed_schemes_are_refused(tmp_path, text, message):
    path = tmp_path / "s.json"
    path.write_text(text)
    with pytest.raises(SchemeError, match=message):
        load_scheme(path)


def test_a_scheme_of_names_alone_reads_labels_1_to_k_with_0_unpainted():
    # what a user writes for labels painted 1 = grain, 2 = pore, 0 elsewhere
    s = ClassScheme.from_dict({"classes": [{"name": "grain"}, {"name": "pore"}]})
    assert s.names == ("grain", "pore") and len(set(s.colors)) == 2
    np.testing.assert_array_equal(s.decode_values(np.array([[0, 1, 2]])), [[0, 1, 2]])
    assert ClassScheme.from_dict(s.to_dict()) == s
    with pytest.raises(SchemeError, match="does not list: 3"):
        s.decode_values(np.array([[0, 3]]))


def test_a_value_scheme_can_name_the_value_of_unpainted_pixels():
    entries = [{"name": "grain", "value": 1}, {"name": "pore", "value": 2}]
    plain = ClassScheme.from_dict({"classes": entries, "rest": None})
    with pytest.raises(SchemeError, match='"unlabelled": 0'):  # the message says how
        plain.decode_values(np.array([[0, 1, 2]]))
    s = ClassScheme.from_dict({"classes": entries, "rest": None, "unlabelled": [0, 99]})
    np.testing.assert_array_equal(s.decode_values(np.array([[0, 1, 2, 99]])), [[0, 1, 2, 0]])
    assert ClassScheme.from_dict(s.to_dict()) == s
    with pytest.raises(SchemeError, match="both"):
        ClassScheme.from_dict({"classes": entries, "unlabelled": 2})
