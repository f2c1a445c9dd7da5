"""The native half of gguf_dequant (Rust, PyO3): see gguf_dequant for the public API."""

from os import PathLike
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str

class GGUFError(ValueError):
    """An error gguf-dequant reports (malformed file, undecodable type, lengths, unknown tensor, shard)."""

class FileBytes:
    """Keeps a file's bytes alive as the base of the arrays GGUFFile.raw returns."""

class GGUFFile:
    def __init__(
        self, path: Union[str, bytes, PathLike[str], PathLike[bytes]], mmap: bool = True
    ) -> None: ...
    @property
    def path(self) -> str: ...
    @property
    def closed(self) -> bool: ...
    @property
    def version(self) -> int: ...
    @property
    def alignment(self) -> int: ...
    @property
    def data_offset(self) -> int: ...
    @property
    def file_size(self) -> int: ...
    @property
    def mapped(self) -> bool: ...
    def metadata(self) -> Dict[str, Any]: ...
    def metadata_types(self) -> Dict[str, str]: ...
    def tensor_infos(self) -> List[Tuple[str, str, int, List[int], int, int, int]]: ...
    def raw(self, name: str) -> npt.NDArray[np.uint8]: ...
    def data(self) -> npt.NDArray[np.uint8]: ...
    def load(
        self,
        items: Sequence[Tuple[str, Optional[Tuple[int, int, int, int]]]],
        dtype: str,
    ) -> List[np.ndarray]: ...
    def close(self) -> None: ...

def dequantize(
    blocks: npt.NDArray[np.uint8],
    ggml_type: Union[str, int],
    shape: Sequence[int],
    dtype: str = "float32",
) -> np.ndarray: ...
def tp_shard(
    name: str,
    ne: Sequence[int],
    ggml_type: Union[str, int, None],
    rank: int,
    world: int,
    split: str = "megatron",
) -> Optional[Tuple[int, int, int, int]]: ...
def ggml_types() -> List[Tuple[str, int, int, int, bool]]: ...
def parse_dtype(name: str) -> str: ...
def dtype_names() -> List[Tuple[str, str]]: ...

# Present in builds with GPU support (the `cuda` feature, the default); private
# to gguf_dequant.torch and gguf_dequant.dequantize, which pass the device
# pointers of tensors they have just allocated.
def load_cuda(
    file: GGUFFile,
    items: Sequence[Tuple[str, Optional[Tuple[int, int, int, int]]]],
    dtype: str,
    ordinal: int,
    stream: int,
    outs: Sequence[Tuple[int, int]],
) -> None: ...
def dequantize_cuda(
    src: int,
    nbytes: int,
    ggml_type: Union[str, int],
    dst: int,
    n: int,
    dtype: str,
    ordinal: int,
    stream: int,
) -> None: ...
