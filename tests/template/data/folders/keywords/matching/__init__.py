from .spans import find_spans

__all__ = ["find_spans"]
