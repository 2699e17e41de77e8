"""`SummaryOptions` as command-line flags, derived from the struct so every CLI takes the same options."""

from collections.abc import Callable, Mapping

import click
import msgspec

from recursum.schemas.options import SummaryOptions


class InvalidOptions(ValueError):
    """Raised when a flag's value is outside its limits; every CLI reports it in one line, exit code 1."""


_CLICK_TYPES = {msgspec.inspect.IntType: int, msgspec.inspect.FloatType: float,
                msgspec.inspect.BoolType: bool, msgspec.inspect.StrType: str}


def _flags() -> list[tuple[str, click.ParamType | type, str]]:
    """(field, click type, help) for each `SummaryOptions` field, in declaration order."""
    flags = []
    for field in msgspec.inspect.type_info(SummaryOptions).fields:
        (meta,) = [t for t in field.type.types if isinstance(t, msgspec.inspect.Metadata)]
        kind = meta.type
        click_type = (click.Choice(kind.values) if isinstance(kind, msgspec.inspect.LiteralType)
                      else _CLICK_TYPES[type(kind)])
        flags.append((field.name, click_type, meta.extra_json_schema["description"]))
    return flags


# About a service's job, not the tree: only the commands that talk to a service take them.
SERVICE_OPTIONS = frozenset({"evaluation"})


def summary_option_flags(defaults: Mapping[str, object] | None = None, service: bool = True) -> Callable:
    """A decorator adding `--chunk-tokens`, `--best-of`, ... (one per field); unset flags stay None.
    `defaults` only shows in the help (the local engine's values; a server has its own); without `service`
    the job options (`SERVICE_OPTIONS`) are left out."""

    def decorate(command: Callable) -> Callable:
        for name, click_type, help_text in reversed(_flags()):
            if not service and name in SERVICE_OPTIONS:
                continue
            shown = f" [default: {defaults[name]}]" if defaults and name in defaults else ""
            command = click.option(f"--{name.replace('_', '-')}", name, type=click_type, default=None,
                                   help=help_text + shown)(command)
        return command

    return decorate


def summary_options(flags: dict[str, object]) -> SummaryOptions:
    """Pop the option flags out of a command's keyword arguments and check them against the limits."""
    chosen = {name: value for name, _, _ in _flags() if (value := flags.pop(name, None)) is not None}
    try:
        return msgspec.convert(chosen, SummaryOptions)
    except msgspec.ValidationError as error:
        raise InvalidOptions(f"invalid option: {error}") from None
