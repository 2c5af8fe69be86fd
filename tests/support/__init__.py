"""Helpers shared by the tests: model builders, images, client threads, tutorial models, schemathesis hooks."""

K8S_VERSION = "1.33.0"  # the Kubernetes version k8s/ is validated against (kubernetes-validate, offline)
