import re

WORD = re.compile(r"\S+")


def tokens(text):
    for match in WORD.finditer(text):
        word = match.group(0)
        end = match.start() + len(word.rstrip(".,;:!?"))
        yield match.start(), end, word
