"""Each role installed alone, in its own virtualenv, from DAIG's wheel (issue 15).

``daig[provider]``: the agent and TensorFlow, no FastAPI, SQLAlchemy or Qt; ``daig provider``
answers and a server command names the extra to install. ``daig[server]``: no TensorFlow or
Qt; ``daig migrate`` migrates a new database on the test Postgres, ``daig api`` answers
``/healthz`` on it and the test RabbitMQ, the aggregator runs with its held-out evaluation off
(saying why) and a ``.keras`` model is refused with the way out. Dependencies come from
``.daig/wheelhouse`` (``bench/role_venvs.py``), filled from the package index the first time.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench.role_venvs import RoleVenv, build_wheel, clean_environment, make_role_venv
from daig_cli.local_infra import Database, unique_name
from daig_cli.processes import ProcessGroup, free_port
from tests.helpers.services import TEST_SECRET

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


def _venv(wheel: Path, role: str, tmp: pytest.TempPathFactory) -> RoleVenv:
    return make_role_venv(wheel, role, tmp.mktemp(f"venv-{role}") / role, compile_bytecode=False)


def _run(venv: RoleVenv, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """A command of the venv (``daig ...`` or ``python ...``) outside this checkout."""
    program = venv.python if args[0] == "python" else venv.daig
    return subprocess.run(
        [str(program), *args[1:]] if args[0] == "python" else [str(program), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env=clean_environment() | {"HOME": str(cwd), "XDG_CONFIG_HOME": str(cwd / "config")},
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())


def test_provider_venv_volunteers_without_server_or_gui_packages(
    wheel: Path, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    venv = _venv(wheel, "provider", tmp_path_factory)
    assert sorted(venv.importable()) == ["keras", "tensorflow"]
    done = _run(venv, "provider", "--help", cwd=tmp_path)
    assert done.returncode == 0 and "Volunteer this machine" in done.stdout, done.stderr
    imported = _run(
        venv,
        "python",
        "-c",
        "import sys, provider_agent.__main__, provider_agent.agent, provider_agent.warmup\n"
        "from daig.logs import quiet_tensorflow; quiet_tensorflow(); import keras\n"
        "print(keras.backend.backend(), [m for m in ('fastapi', 'sqlalchemy', 'PyQt5')"
        " if m in sys.modules])",
        cwd=tmp_path,
    )
    assert imported.returncode == 0, imported.stderr[-3000:]
    assert imported.stdout.split()[0] == "tensorflow" and "[]" in imported.stdout
    refused = _run(venv, "api", cwd=tmp_path)
    assert refused.returncode == 1
    assert "`daig api` needs the server extra: pip install 'daig[server]'" in _one_line(
        refused.stderr
    ), refused.stderr
    gui = _run(venv, "gui", cwd=tmp_path)
    assert gui.returncode == 1 and "pip install 'daig[gui]'" in _one_line(gui.stderr)


def test_server_venv_serves_without_tensorflow_or_qt(
    wheel: Path,
    tmp_path_factory: pytest.TempPathFactory,
    database_url: str,
    amqp_url: str,
    tmp_path: Path,
) -> None:
    venv = _venv(wheel, "server", tmp_path_factory)
    assert sorted(venv.importable()) == ["fastapi", "sqlalchemy"]
    helped = _run(venv, "api", "--help", cwd=tmp_path)
    assert helped.returncode == 0 and "Run the HTTP API" in helped.stdout, helped.stderr
    refused = _run(
        venv, "provider", "--server", "http://x", "--user", "u", "--password", "p", cwd=tmp_path
    )
    assert refused.returncode == 1
    assert "pip install 'daig[provider]'" in _one_line(refused.stderr), refused.stderr
    _keras_upload_is_refused_with_the_way_out(venv, tmp_path)

    fresh = Database.named(database_url, unique_name("daig_test"))  # not migrated yet
    api_port, metrics_port = free_port(), free_port()
    env = {
        "PYTHONPATH": "",  # the venv's own packages, not this checkout's
        "HOME": str(tmp_path),
        "DAIG_DATABASE_URL": fresh.url,
        "DAIG_AMQP_URL": amqp_url,
        "DAIG_BLOB_URL": (tmp_path / "blobs").as_uri(),
        "DAIG_SECRET_KEY": TEST_SECRET,
        "DAIG_PUBLIC_API_URL": f"http://127.0.0.1:{api_port}",
    }
    roles = ProcessGroup(env, tmp_path / "logs")
    try:
        migrate = roles.start_argv("migrate", [str(venv.daig), "migrate"])
        assert migrate.wait(180) == 0, roles.log("migrate")[-3000:]
        assert roles.stop("migrate") == 0  # done: the others must keep running
        roles.start_argv("api", [str(venv.daig), "api", "--port", str(api_port)])
        roles.wait_for_url(f"http://127.0.0.1:{api_port}/healthz", timeout=120)
        roles.start_argv(
            "aggregator",
            [str(venv.daig), "aggregator"],
            env={"DAIG_METRICS_PORT": str(metrics_port)},
        )
        roles.wait_for_url(f"http://127.0.0.1:{metrics_port}/healthz", timeout=120)
        assert "held-out evaluation is off: keras and tensorflow not installed" in roles.log(
            "aggregator"
        )
    finally:
        roles.stop_all()
        fresh.drop()


def _keras_upload_is_refused_with_the_way_out(venv: RoleVenv, tmp_path: Path) -> None:
    """The API's converter, asked for a .keras model on a server without Keras."""
    done = _run(
        venv,
        "python",
        "-c",
        "from pathlib import Path\n"
        "from daig.modelfile.convert import convert_to_h5\n"
        "from daig.modelfile.inspect import ModelRejected\n"
        "try:\n"
        "    convert_to_h5(Path('model.keras'), Path('model.h5'))\n"
        "except ModelRejected as exc:\n"
        "    print(exc)\n",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "cannot open .keras models" in done.stdout
    assert "save the model as .h5 instead" in done.stdout, done.stdout
