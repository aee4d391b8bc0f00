"""The ``daig`` command: run services, volunteer, manage projects, run the demo."""

from __future__ import annotations

import typer

from daig.cli import credits, project, servers

app = typer.Typer(
    help="DAIG, the Distributed A.I. Grid: train Keras models on volunteers' computers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
servers.register(app)
app.add_typer(project.app, name="project")
credits.register(app)


@app.command()
def demo(
    providers: int = typer.Option(3, min=1, max=8, help="Provider processes to start."),
    keep: bool = typer.Option(False, help="Keep the demo database and blobs afterwards."),
) -> None:
    """Run the whole system on this machine and train a real model end to end."""
    from daig.cli.demo import run_demo
    from daig.logs import quiet_tensorflow

    quiet_tensorflow()

    raise typer.Exit(run_demo(providers=providers, keep=keep))


@app.command()
def gui(
    server: str = typer.Option(
        None, "--server", envvar="DAIG_SERVER", help="URL of the DAIG API (fills in the login)."
    ),
) -> None:
    """Open the desktop client: learning requestor and resource provider modes."""
    from requestor_gui.__main__ import main as gui_main

    raise typer.Exit(gui_main(["--server", server] if server else []))


def main() -> None:
    app()
