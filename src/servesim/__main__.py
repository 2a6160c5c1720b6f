"""`servesim` and `python -m servesim`: the command line, started quickly."""

import gc


def main() -> None:
    # the libraries the command line imports make many objects and no garbage: no collector passes meanwhile
    gc.disable()
    from servesim.cli import main as cli

    gc.enable()
    cli()


if __name__ == "__main__":
    main()
