"""Converting an accepted ``.keras`` archive to ``.h5`` in a sandboxed child process.

DAIG's servers and providers work on ``.h5`` files (weights readable without Keras). A
``.keras`` upload is checked first (``archive.inspect_archive``, no Keras involved), then
loaded with ``safe_mode`` and saved as ``.h5`` by a separate Python process with no secrets in
its environment, CPU-time and output-size limits, and a timeout; a crash or a hang there
cannot take the API down.

Run as ``python -m daig.modelfile.convert SOURCE.keras TARGET.h5``.
"""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

from daig.keras_runtime import KERAS_EXTRA, missing_keras_modules
from daig.modelfile.inspect import ModelRejected
from daig.sandbox import sandbox_environment

CPU_SECONDS = 300
MAX_OUTPUT_BYTES = 4 * 1024**3


def _limit_resources() -> None:
    """Applied by the child itself (preexec_fn is unsafe in the API's threads)."""
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS))
    resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_OUTPUT_BYTES, MAX_OUTPUT_BYTES))


def convert_to_h5(source: Path, target: Path, *, timeout: float = 600.0) -> None:
    """Convert ``source`` (.keras) to ``target`` (.h5) or raise ``ModelRejected``."""
    missing = missing_keras_modules()
    if missing:
        raise ModelRejected(
            f"this server cannot open .keras models: it was installed without "
            f"{' and '.join(missing)} (its operator can add them: {KERAS_EXTRA}); save the "
            "model as .h5 instead (model.save('model.h5')) and upload that"
        )
    try:
        done = subprocess.run(
            [sys.executable, "-m", "daig.modelfile.convert", str(source), str(target)],
            env=sandbox_environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise ModelRejected(f"converting the .keras model took over {timeout:.0f} s") from exc
    if done.returncode != 0 or not target.exists():
        reason = (done.stdout.strip().splitlines() or ["the converter crashed"])[-1]
        raise ModelRejected(f"the .keras model cannot be loaded: {reason}")


def main() -> int:
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    _limit_resources()
    from daig import tempdirs
    from daig.logs import quiet_tensorflow
    from daig.modelfile.archive import inspect_archive

    try:
        inspect_archive(source)  # never trust the caller: check again before loading
        quiet_tensorflow()
        import keras

        with tempdirs.scratch("convert") as directory:
            named = directory / "model.keras"  # Keras goes by the file name's suffix
            named.symlink_to(source.resolve())
            model = keras.models.load_model(named, safe_mode=True)
        model.save(target)
    except Exception as exc:  # reported on stdout, one line, for the API's error message
        print(f"{type(exc).__name__}: {exc}".replace("\n", " ")[:500])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
