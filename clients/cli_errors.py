"""One rule for every recursum command line: an error the user can fix is one line on stderr and exit code 1,
never a traceback. The service, training and client CLIs each name which errors are the user's."""

import sys

import click


def _describe(error: BaseException) -> str:
    if isinstance(error, ModuleNotFoundError):
        return (f"{error.name} is not installed: this command needs the service extra "
                "(pip install 'recursum[service]')")
    if isinstance(error, OSError) and error.filename:
        return f"{error.strerror or error}: {error.filename}"
    return str(error)


def one_line_errors(*user_errors: type[BaseException]) -> type[click.Group]:
    """A click group class that turns `user_errors` raised by its commands into `recursum: error: ...`."""

    class OneLineErrorGroup(click.Group):
        def invoke(self, ctx: click.Context):
            try:
                return super().invoke(ctx)
            except user_errors as error:
                click.echo(f"recursum: error: {_describe(error)}", err=True)
                sys.exit(1)

    return OneLineErrorGroup
