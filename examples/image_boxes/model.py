"""An image model that boxes the object on a plain background and learns its label by colour.

Seed style. ``predict`` opens each task's image (``self.get_local_path`` handles local paths,
``file://``, ``http(s)://`` and Label Studio's ``/data/upload/...`` URLs), takes the colour of
the top-left pixel as the background, and answers one ``rectanglelabels`` region around every
pixel that differs from it, in percent of the image with ``original_width/height``.

``fit`` learns one mean colour per label from the boxes annotators drew; ``predict`` then picks
the label whose colour is nearest to the object's. Before training (or when no annotated box
could be read) the label is the most recently annotated one, else the config's first, with
score 0.

Labeling config (also in label_config.xml next to this file):

<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image">
    <Label value="Tomato" background="red"/>
    <Label value="Blueberry" background="blue"/>
  </RectangleLabels>
</View>
"""

from __future__ import annotations

import logging
import math

from label_studio_ml.model import LabelStudioMLBase
from label_studio_ml.utils import get_single_tag_keys
from PIL import Image, ImageChops, ImageStat

logger = logging.getLogger(__name__)

THRESHOLD = 40  # how far (0-255, any channel) a pixel must be from the background


def load_rgb(path):
    with Image.open(path) as image:
        return image.convert("RGB")


def foreground(image):
    """A mask (mode "L") of the pixels that differ from the top-left pixel's colour."""
    background = Image.new("RGB", image.size, image.getpixel((0, 0)))
    difference = ImageChops.difference(image, background).convert("L")
    return difference.point(lambda p: 255 if p > THRESHOLD else 0)


def mean_colour(image, mask, box):
    """Mean RGB of the masked pixels inside ``box`` (left, top, right, bottom), or None."""
    region = mask.crop(box)
    if not region.getbbox():
        return None
    return [round(c, 1) for c in ImageStat.Stat(image.crop(box), mask=region).mean]


class ColourBoxModel(LabelStudioMLBase):
    """One box per image around the non-background pixels, labelled by learned colour."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.from_name, self.to_name, self.value, self.labels = get_single_tag_keys(
            self.parsed_label_config, "RectangleLabels", "Image"
        )
        self.colours = self.train_output.get("colours") or {}
        self.default_label = self.train_output.get("last_label") or self.labels[0]

    def _label(self, colour):
        """(label, score): the nearest learned colour, else the default label with score 0."""
        known = {k: v for k, v in self.colours.items() if k in self.labels}
        if not known:
            return self.default_label, 0.0
        distances = {label: math.dist(colour, ref) for label, ref in known.items()}
        label = min(distances, key=distances.get)
        return label, round(1.0 / (1.0 + distances[label] / 64.0), 3)

    def predict(self, tasks, **kwargs):
        predictions = []
        for task in tasks:
            try:
                path = self.get_local_path(task["data"][self.value], task_id=task.get("id"))
                image = load_rgb(path)
            except Exception as exc:  # unreachable or unreadable image: no region
                logger.warning("task %s: cannot read the image: %s", task.get("id"), exc)
                predictions.append({"result": [], "score": 0.0})
                continue
            mask = foreground(image)
            box = mask.getbbox()
            if box is None:
                predictions.append({"result": [], "score": 0.0})
                continue
            width, height = image.size
            left, top, right, bottom = box
            label, score = self._label(mean_colour(image, mask, box))
            region = {
                "id": f"{task.get('id', 't')}-0",
                "from_name": self.from_name,
                "to_name": self.to_name,
                "type": "rectanglelabels",
                "original_width": width,
                "original_height": height,
                "image_rotation": 0,
                "value": {
                    "x": 100.0 * left / width,
                    "y": 100.0 * top / height,
                    "width": 100.0 * (right - left) / width,
                    "height": 100.0 * (bottom - top) / height,
                    "rotation": 0,
                    "rectanglelabels": [label],
                },
                "score": score,
            }
            predictions.append({"result": [region], "score": score})
        return predictions

    def fit(self, annotations, workdir=None, **kwargs):
        sums, counts, last_label = {}, {}, None
        for task in annotations:
            for annotation in task.get("annotations") or []:
                if annotation.get("was_cancelled"):
                    continue
                for region in annotation.get("result") or []:
                    value = region.get("value") or {}
                    labels = value.get("rectanglelabels")
                    if region.get("from_name") != self.from_name or not labels:
                        continue
                    last_label = labels[0]
                    colour = self._box_colour(task, value)
                    if colour is not None:
                        sums[labels[0]] = [a + b for a, b in zip(sums.get(labels[0], [0, 0, 0]), colour)]
                        counts[labels[0]] = counts.get(labels[0], 0) + 1
        if last_label is None:
            raise ValueError(f"no {self.from_name!r} boxes in the annotations to train on")
        colours = {label: [round(c / counts[label], 1) for c in sums[label]] for label in sums}
        logger.info("learned colours of %s from %d boxes", sorted(colours), sum(counts.values()))
        return {"colours": colours, "last_label": last_label, "boxes": sum(counts.values())}

    def _box_colour(self, task, value):
        """Mean colour of the object pixels inside an annotated box (None if unreadable)."""
        if not all(k in value for k in ("x", "y", "width", "height")):
            return None
        try:
            image = load_rgb(self.get_local_path(task["data"][self.value], task_id=task.get("id")))
        except Exception as exc:
            logger.warning("task %s: cannot read the image: %s", task.get("id"), exc)
            return None
        width, height = image.size
        box = (
            int(value["x"] * width / 100),
            int(value["y"] * height / 100),
            math.ceil((value["x"] + value["width"]) * width / 100),
            math.ceil((value["y"] + value["height"]) * height / 100),
        )
        return mean_colour(image, foreground(image), box)
