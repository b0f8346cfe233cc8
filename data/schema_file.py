"""Schema files: a :class:`TableSchema` written to, and read back from, YAML.

The file holds exactly what ``task.schema`` holds in a task config (``features``,
``label``, ``protected``), so the same text can be pasted under ``task.schema:`` in a
``conf/task/*.yaml`` file or read on its own with :func:`read_schema`.
"""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from fedrisk.data.schema import TableSchema

__all__ = ["read_schema", "schema_to_yaml"]


def schema_to_yaml(schema: TableSchema) -> str:
    """Render ``schema`` as the YAML body of ``task.schema``.

    Parameters
    ----------
    schema : TableSchema
        The schema to write.

    Returns
    -------
    str
        YAML text; :func:`read_schema` on it returns an equal schema.
    """
    return OmegaConf.to_yaml(OmegaConf.structured(schema))


def read_schema(path: str | os.PathLike[str]) -> TableSchema:
    """Read and validate a schema file written by :func:`schema_to_yaml` (or by hand).

    Parameters
    ----------
    path : str | os.PathLike[str]
        A YAML file with the keys of ``task.schema``: ``features`` (each with ``name``,
        ``kind`` and the options of :class:`~fedrisk.data.schema.FeatureSpec`),
        ``label`` and optionally ``protected``.

    Returns
    -------
    TableSchema
        The validated schema.

    Raises
    ------
    ValueError
        If the file cannot be read, is not a YAML mapping, has an unknown key or a value
        of the wrong type, or describes an invalid schema; one line naming the file.
    """
    file = os.fspath(path)
    try:
        raw = OmegaConf.load(Path(file))
        if not OmegaConf.is_dict(raw):
            raise ValueError(f"must be a YAML mapping of task.schema; got {type(raw).__name__}")
        if isinstance(raw, DictConfig) and isinstance(raw.get("protected"), str):
            raw.protected = [raw.protected]  # one column may be named without a list
        schema = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(TableSchema), raw))
    except OSError as err:
        raise ValueError(f"{file}: cannot read the schema file ({err.strerror})") from None
    except OmegaConfBaseException as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{file}: {first}") from None
    except (ValueError, TypeError) as err:
        raise ValueError(f"{file}: {err}") from None
    if not isinstance(schema, TableSchema):
        raise ValueError(f"{file}: must describe a table schema; got {type(schema).__name__}")
    return schema
