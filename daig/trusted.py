"""Converting the requestor's own object arrays to numbers, on their machine, when they say so.

The original DAIG client recommended saving arrays with ``dtype=object``. Reading those means
unpickling, which runs whatever code the file's author put in it -- so servers and providers
never do. A requestor who made the file themselves can ask their own CLI or GUI to unpickle it
locally (``--trust-object-arrays``) and upload a plain numeric copy instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from daig.npy import ArrayRejected, read_header

TRUST_EXPLANATION = (
    "it has dtype object: reading it means unpickling, which runs any code its author put "
    "in it, so DAIG never does that on a server or a volunteer's machine. If you made this "
    "file yourself and trust it, pass --trust-object-arrays (GUI: tick 'I trust this file') "
    "to convert it here to a numeric copy, or save it with a numeric dtype, e.g. "
    "np.save(path, np.asarray(x, dtype='float32'))"
)


def is_object_array(path: Path) -> bool:
    try:
        with open(path, "rb") as stream:
            read_header(stream, file_size=path.stat().st_size)
    except ArrayRejected as exc:
        return "dtype object" in str(exc)
    return False


def numeric_copy(source: Path, target: Path) -> Path:
    """Unpickle ``source`` (the caller trusts it) and save it as a numeric array at ``target``.

    Integer-valued data become int64, everything else float32; ragged rows are refused.
    """
    array = np.load(source, allow_pickle=True)  # only ever on the requestor's own file
    try:
        numeric = np.array(array.tolist())
    except ValueError as exc:
        raise ArrayRejected(
            f"{source.name}: rows of different lengths cannot be converted ({exc})"
        ) from exc
    if numeric.dtype.kind in "biu":
        numeric = numeric.astype(np.int64)
    elif numeric.dtype.kind == "f":
        numeric = numeric.astype(np.float32)
    else:
        raise ArrayRejected(f"{source.name}: holds {numeric.dtype} values, not numbers")
    np.save(target, np.ascontiguousarray(numeric), allow_pickle=False)
    return target
