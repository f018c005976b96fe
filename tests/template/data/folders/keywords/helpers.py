"""Text helpers shared by the model and the matching package."""


def normalise(word):
    return word.strip(".,;:!?").lower()
