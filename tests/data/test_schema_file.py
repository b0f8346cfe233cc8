import pytest

from fedrisk.data import credit_schema, read_schema, schema_to_yaml


def test_round_trip_gives_an_equal_schema(tmp_path):
    path = tmp_path / "schema.yaml"
    path.write_text("# a comment\n" + schema_to_yaml(credit_schema()))

    assert read_schema(path) == credit_schema()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("features: [{name: x, low: 0, high: 1}]\nlabel: y\ncolour: red\n", "colour"),
        ("features: [{name: x, low: 1, high: 0}]\n", "`low` must be less than `high`"),
        ("features: []\n", "at least one feature"),
        ("- just\n- a list\n", "mapping"),
    ],
)
def test_invalid_schema_raises_one_line_naming_the_file(tmp_path, text, message):
    path = tmp_path / "schema.yaml"
    path.write_text(text)

    with pytest.raises(ValueError, match=r"schema\.yaml: ") as caught:
        read_schema(path)

    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_missing_file_raises_value_error(tmp_path):
    with pytest.raises(ValueError, match="cannot read the schema file"):
        read_schema(tmp_path / "absent.yaml")
