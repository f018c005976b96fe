"""The seed tutorial's DummyModel plus 6 s of loading in ``__init__`` (issue 10's reproduction)."""

import time

from label_studio_ml.model import LabelStudioMLBase

LOAD_SECONDS = 6


class SlowLoadModel(LabelStudioMLBase):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        time.sleep(LOAD_SECONDS)  # weights loading: longer than Label Studio's 3 s /setup timeout
        from_name, schema = list(self.parsed_label_config.items())[0]
        self.from_name = from_name
        self.to_name = schema["to_name"][0]
        self.labels = schema["labels"]

    def predict(self, tasks, **kwargs):
        region = {
            "from_name": self.from_name,
            "to_name": self.to_name,
            "type": "choices",
            "value": {"choices": [self.labels[0]]},
        }
        return [{"result": [region], "score": 0.9} for _ in tasks]
