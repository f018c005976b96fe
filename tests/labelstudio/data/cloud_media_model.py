"""A current-SDK-style model that reads each task's image through ``get_local_path``.

Written the way the ML SDK's examples are: ``get_first_tag_occurence`` finds the tags,
``self.get_local_path(url, task_id=task["id"])`` fetches the media (a cloud storage URI is
resolved by Label Studio), and the answer is a ``ModelResponse``. It predicts the SHA-256
and the size of the image's bytes as text, so a test can check the bytes that arrived.
"""

import hashlib
import os

from label_studio_ml.model import LabelStudioMLBase
from label_studio_ml.response import ModelResponse


class CloudImageDigest(LabelStudioMLBase):
    def setup(self):
        self.set("model_version", "cloud-digest-1")

    def predict(self, tasks, context=None, **kwargs):
        from_name, to_name, value = self.get_first_tag_occurence("TextArea", "Image")
        predictions = []
        for task in tasks:
            path = self.get_local_path(task["data"][value], task_id=task["id"])
            with open(path, "rb") as fh:
                content = fh.read()
            text = f"sha256={hashlib.sha256(content).hexdigest()} bytes={len(content)} file={os.path.basename(path)}"
            predictions.append(
                {
                    "result": [
                        {
                            "from_name": from_name,
                            "to_name": to_name,
                            "type": "textarea",
                            "value": {"text": [text]},
                        }
                    ],
                    "score": 1.0,
                }
            )
        return ModelResponse(predictions=predictions)
