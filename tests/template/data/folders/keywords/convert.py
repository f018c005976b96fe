"""A tool run by hand (nothing imports it): turns a CSV of keywords into data/keywords.txt."""

import csv
import sys

if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as rows:
        for word, label in csv.reader(rows):
            print(word, label)
