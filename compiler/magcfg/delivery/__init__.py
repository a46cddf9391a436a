"""How an artifact reaches a cluster: the ConfigMap that carries it (``configmap``) and
the build's emitter that keeps it in step with the signature (``emitter``)."""
