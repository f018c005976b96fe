"""An e2e model: ``fit`` takes a few seconds, writes an artefact and says which process ran it.

<View>
  <Text name="text" value="$text"/>
  <Choices name="label" toName="text">
    <Choice value="pos"/>
    <Choice value="neg"/>
  </Choices>
</View>
"""

import json
import os
import time
from pathlib import Path

from label_studio_ml.model import LabelStudioMLBase


class SlowModel(LabelStudioMLBase):
    """``fit`` runs ``data["fit_seconds"]`` seconds (default 3), sleeping or, with ``burn``, on the CPU."""

    def predict(self, tasks, context=None, **kwargs):
        artefact = None
        if self.workdir and Path(self.workdir, "artefact.json").is_file():
            artefact = json.loads(Path(self.workdir, "artefact.json").read_text())
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
                "artefact": artefact,
                "pid": os.getpid(),
            }
            for _ in tasks
        ]

    def fit(self, event, data, workdir=None, job_id=None, **kwargs):
        data = data or {}
        seconds = float(data.get("fit_seconds", 3))
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if data.get("burn"):
                sum(i * i for i in range(20000))  # CPU-bound, like real training
            else:
                time.sleep(0.02)
        info = {
            "project": self.project_id,
            "event": event,
            "job_id": job_id,
            "pid": os.getpid(),
            "ppid": os.getppid(),
            "tag": data.get("tag"),
        }
        Path(workdir, "artefact.json").write_text(json.dumps(info))
        return {**info, "artefact": "artefact.json"}
