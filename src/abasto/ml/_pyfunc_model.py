"""MLflow *models from code* entry point: the pyfunc that serves a saved pattern model.

MLflow copies this file into the saved model and runs it on load; nothing else imports it.
"""

import mlflow.models

from abasto.ml.serving import PatternPyfunc

mlflow.models.set_model(PatternPyfunc())
