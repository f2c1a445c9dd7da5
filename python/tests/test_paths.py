"""Paths are bytes on Linux (issue 23): every function that takes a path takes
``str``, ``bytes`` and ``os.PathLike`` of either, opens exactly that file
and gives the path back exactly, never a lossy copy naming another file.

The files here have names that differ only in bytes that are not UTF-8 and
that a lossy conversion maps to the same string, which is also the name of a
third file: a lossy path would read one of the others.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import gguf_dequant
import gguf_dequant.numpy
import gguf_dequant.torch
from gguf_writer import write_gguf


class BytesPath:
    """An ``os.PathLike`` whose path is bytes."""

    def __init__(self, path: bytes) -> None:
        self.path = path

    def __fspath__(self) -> bytes:
        return self.path


@pytest.fixture
def odd_files(tmp_path):
    """{path as bytes: the value its tensor holds}: two names that are not
    UTF-8, and the name both read as when decoded lossily."""
    folder = os.fsencode(tmp_path)
    files = {
        folder + b"/model-\xff.gguf": 1.0,
        folder + b"/model-\xfe.gguf": 2.0,
        os.fsencode(str(tmp_path / "model-\ufffd.gguf")): 3.0,
    }
    for path, value in files.items():
        write_gguf(path, [("x", 0, [4], np.full(4, value, "<f4").tobytes())])
    return files


def _ways(path: bytes) -> list:
    """The same path as each kind of argument a path may be."""
    text = os.fsdecode(path)  # the bytes that are not UTF-8 as surrogate escapes
    return [path, text, Path(text), BytesPath(path)]


def test_the_file_named_is_the_one_read(odd_files):
    for path, value in odd_files.items():
        for given in _ways(path):
            with gguf_dequant.GGUFFile(given) as f:
                assert f.path == os.fspath(given) and type(f.path) is type(os.fspath(given))
                assert os.fsencode(f.path) == path
                assert f.get_tensor("x").tolist() == [value] * 4, given
                with gguf_dequant.GGUFFile(f.path) as again:  # the path given back names it
                    assert again.get_tensor("x").tolist() == [value] * 4
                assert repr(f)  # shows, whatever the bytes
            assert gguf_dequant.numpy.load_file(given)["x"].tolist() == [value] * 4
            assert gguf_dequant.torch.load_file(given)["x"].tolist() == [value] * 4


def test_the_transformers_reader_reads_the_file_named(odd_files):
    pytest.importorskip("gguf")
    import gguf_dequant.transformers as gt

    for path, value in odd_files.items():
        for given in _ways(path):
            reader = gt.GGUFReader(given)
            assert isinstance(reader, gt.GGUFReader)  # ours, not gguf-py's fallback
            data = reader.tensors[0].data
            assert data.tolist() == [value] * 4, given


def test_a_missing_file_that_is_not_utf8(tmp_path):
    missing = os.fsencode(tmp_path) + b"/missing-\xff.gguf"
    for given in _ways(missing):
        with pytest.raises(FileNotFoundError):
            gguf_dequant.GGUFFile(given)


def test_the_transformers_reader_never_opens_the_path_again(tmp_path, monkeypatch):
    # Its tensors' bytes come from the file it parsed, even where the path
    # names another file a moment later (a rename over it).
    pytest.importorskip("gguf")
    import gguf_dequant.transformers as gt

    path, other = tmp_path / "model.gguf", tmp_path / "other.gguf"
    write_gguf(path, [("x", 0, [4], np.full(4, 1.0, "<f4").tobytes())])
    write_gguf(other, [("x", 0, [4], np.full(4, 2.0, "<f4").tobytes())])

    class ThenRenamed(gt.GGUFFile):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            os.replace(other, path)  # once parsed, the path names the other file

    monkeypatch.setattr(gt, "GGUFFile", ThenRenamed)
    reader = gt.GGUFReader(path)
    assert isinstance(reader, gt.GGUFReader)
    assert reader.tensors[0].data.tolist() == [1.0] * 4
