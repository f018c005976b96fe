"""The detector. Imports a third-party package at the top, as model code imports torch."""

import re

from tabulate import tabulate

NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


class RunDetector:
    def __init__(self, threshold, label):
        self.threshold = float(threshold)
        self.label = label

    def runs(self, text):
        """(start, end, label) of each run of consecutive numbers above the threshold."""
        found, current = [], None
        for match in NUMBER.finditer(text):
            if float(match.group(0)) > self.threshold:
                current = (current[0], match.end()) if current else (match.start(), match.end())
            elif current:
                found.append(current)
                current = None
        if current:
            found.append(current)
        return [(start, end, self.label) for start, end in found]

    def describe(self):
        return tabulate([[self.threshold, self.label]], headers=["threshold", "label"])
