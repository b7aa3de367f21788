"""``python -m headroom_integrations``: the ``headroom-memory`` command line."""

from .cli import main

if __name__ == "__main__":
    main()
