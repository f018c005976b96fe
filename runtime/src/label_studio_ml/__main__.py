"""``python -m label_studio_ml ...`` is ``label-studio-ml ...``."""

from .cli import main

main()
