"""The one error type of the converters: a file that is not what `--from` says (the CLI exits 2)."""


class ConvertError(ValueError):
    """The input file cannot be converted; the message names the file and what was expected."""
