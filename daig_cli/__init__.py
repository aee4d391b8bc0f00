"""The ``daig`` command: run services, volunteer, manage projects, run the demo."""

from __future__ import annotations

from pathlib import Path

import typer

from daig_cli import credits, desktop, project, quarantine, servers
from daig_cli.extras import require_extra

app = typer.Typer(
    help="DAIG, the Distributed A.I. Grid: train Keras models on volunteers' computers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
servers.register(app)
app.add_typer(project.app, name="project")
credits.register(app)
quarantine.register(app)
desktop.register(app)


@app.command()
def demo(
    providers: int = typer.Option(3, min=1, max=8, help="Provider processes to start."),
    keep: bool = typer.Option(False, help="Keep the demo database and blobs afterwards."),
) -> None:
    """Run the whole system on this machine and train a real model end to end."""
    require_extra("demo")
    from daig.logs import quiet_tensorflow
    from daig_cli.demo import run_demo

    quiet_tensorflow()

    raise typer.Exit(run_demo(providers=providers, keep=keep))


@app.command()
def up(
    host: str = typer.Option("127.0.0.1", help="Address the API listens on."),
    port: int = typer.Option(8000, help="Port of the API (and of its /metrics)."),
    metrics_port: int = typer.Option(
        9100, help="Scheduler's /metrics and /healthz port; aggregator N uses this + N."
    ),
    aggregators: int = typer.Option(1, min=1, max=16, help="Aggregator processes to start."),
    log_dir: Path = typer.Option(
        None, help="Where each role's log goes (default ~/.local/state/daig/logs)."
    ),
    migrate: bool = typer.Option(True, help="Apply database migrations first."),
) -> None:
    """Run the API, scheduler and aggregators here as processes until Ctrl-C (DAIG_* settings)."""
    require_extra("up")
    from daig_cli.up import UpOptions, run_up

    raise typer.Exit(
        run_up(
            UpOptions(
                host=host,
                port=port,
                metrics_port=metrics_port,
                aggregators=aggregators,
                log_dir=log_dir,
                migrate=migrate,
            )
        )
    )


@app.command()
def gui(
    server: str = typer.Option(
        None, "--server", envvar="DAIG_SERVER", help="URL of the DAIG API (fills in the login)."
    ),
) -> None:
    """Open the desktop client: learning requestor and resource provider modes."""
    require_extra("gui")
    from requestor_gui.__main__ import main as gui_main

    raise typer.Exit(gui_main(["--server", server] if server else []))


def main() -> None:
    from daig.signals import exit_on_sigterm

    # Commands clean up (scratch directories, a demo's cluster) when terminated; the server
    # roles and the GUI install their own handlers over this one.
    exit_on_sigterm()
    app()
