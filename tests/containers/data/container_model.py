"""The container tier's model: ``fit`` needs no Label Studio and takes as long as it is told.

<View>
  <Text name="text" value="$text"/>
  <Choices name="label" toName="text">
    <Choice value="pos"/>
    <Choice value="neg"/>
  </Choices>
</View>

The webhook's body drives ``fit``: ``fit_seconds`` (default 0.2) to sleep, ``fail`` to raise
(a traceback in ./logs/rq.log and in ``docker compose logs``), ``tag`` to tell runs apart.
"""

import json
import os
import time
from pathlib import Path

from label_studio_ml.model import LabelStudioMLBase


class ContainerModel(LabelStudioMLBase):
    def predict(self, tasks, context=None, **kwargs):
        label = "neg" if self.train_output else "pos"
        return [
            {
                "result": [
                    {
                        "from_name": "label",
                        "to_name": "text",
                        "type": "choices",
                        "value": {"choices": [label]},
                    }
                ],
                "score": 0.5,
                "train_output": self.train_output,
            }
            for _ in tasks
        ]

    def fit(self, event, data, workdir=None, job_id=None, **kwargs):
        data = data or {}
        deadline = time.monotonic() + float(data.get("fit_seconds", 0.2))
        while time.monotonic() < deadline:
            time.sleep(0.05)
        if data.get("fail"):
            raise RuntimeError(f"fit failed on purpose: {data['fail']}")
        info = {"tag": data.get("tag"), "pid": os.getpid(), "uid": os.getuid(), "job_id": job_id}
        Path(workdir, "artefact.json").write_text(json.dumps(info))
        return info
