from helpers import normalise

from .tokens import tokens


def find_spans(text, keywords):
    """(start, end, label) of every token of ``text`` that is a keyword."""
    return [
        (start, end, keywords[normalise(word)])
        for start, end, word in tokens(text)
        if normalise(word) in keywords
    ]
