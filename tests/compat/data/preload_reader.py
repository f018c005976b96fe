"""A model that reads the documents its tasks point to, through ``preload_task_data``.

Tasks hold a path or URL (``/data/local-files/?d=...``, an uploaded file, a local path)
instead of the text. ``self.preload_task_data(task, task['data'])`` replaces each with the
file's text, and the model flags documents that mention a watch word. The watch words come
from the connection's extra params (``{"watch": ["refund", ...]}``), else the default list.
Uses no label-studio-sdk: ``get_first_tag_occurence`` and ``parsed_label_config`` work
without it.

<View>
  <Text name="doc" value="$doc"/>
  <Choices name="flag" toName="doc">
    <Choice value="Urgent"/>
    <Choice value="Routine"/>
  </Choices>
</View>
"""

from typing import Dict, List, Optional

from label_studio_ml.model import LabelStudioMLBase
from label_studio_ml.response import ModelResponse
from label_studio_ml.utils import get_single_tag_keys


class WatchWords(LabelStudioMLBase):
    DEFAULT_WATCH = ("urgent", "asap", "refund")

    def setup(self):
        self.set("model_version", "watch-words-1")

    def predict(self, tasks: List[Dict], context: Optional[Dict] = None, **kwargs) -> ModelResponse:
        from_name, to_name, value = self.get_first_tag_occurence("Choices", "Text")
        _, _, _, labels = get_single_tag_keys(self.parsed_label_config, "Choices", "Text")
        watch = [w.lower() for w in self.extra_params.get("watch", self.DEFAULT_WATCH)]
        predictions = []
        for task in tasks:
            data = self.preload_task_data(task, dict(task["data"]))
            text = str(data.get(value) or "").lower()
            hits = [w for w in watch if w in text]
            label = labels[0] if hits else labels[1]
            region = {
                "from_name": from_name,
                "to_name": to_name,
                "type": "choices",
                "value": {"choices": [label]},
            }
            predictions.append({"result": [region], "score": 1.0 if hits else 0.5})
        return ModelResponse(predictions=predictions)
