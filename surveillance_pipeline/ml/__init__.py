"""Models: IsolationForest, autoencoder, RandomForest, their ensemble, training and the MLflow registry.

Nothing heavy is imported here: TensorFlow only in ml.autoencoder, MLflow only in ml.registry / ml.pyfunc."""
