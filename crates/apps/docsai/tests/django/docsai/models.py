"""docsai's old Django models, following the seed's list
(seeds/docsai-s3-migration-summary.md, "Models Migrated"), with the field types that
`bucketbase migrate sqlite` must cast: DateTimeField (text), BooleanField (0/1),
JSONField (text), DecimalField (numeric), UUIDField (32 hex digits, no dashes).

Every top-level model belongs to a Django user (`created_by`); `UserProfile` maps a
Django user to the appointment360 uuid that owns the migrated records.
"""
import uuid

from django.conf import settings
from django.db import models

USER = settings.AUTH_USER_MODEL


class UserProfile(models.Model):
    user = models.OneToOneField(USER, on_delete=models.CASCADE, related_name="profile")
    uuid = models.UUIDField(unique=True, default=uuid.uuid4)


class Owned(models.Model):
    created_by = models.ForeignKey(USER, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        abstract = True


class KnowledgeBase(Owned):
    title = models.CharField(max_length=300)
    slug = models.SlugField(max_length=300)
    content = models.TextField(blank=True)
    category = models.CharField(max_length=100, blank=True)
    tags = models.JSONField(default=list)
    is_published = models.BooleanField(default=False)
    views = models.PositiveIntegerField(default=0)
    metadata = models.JSONField(default=dict)


class AILearningSession(Owned):
    title = models.CharField(max_length=300)
    topic = models.CharField(max_length=200, blank=True)
    model_name = models.CharField(max_length=100)
    status = models.CharField(max_length=20, default="active")
    total_cost = models.DecimalField(max_digits=10, decimal_places=4, default=0)
    total_tokens = models.IntegerField(default=0)
    context = models.JSONField(default=dict)
    ended_at = models.DateTimeField(null=True, blank=True)


class ChatMessage(models.Model):
    session = models.ForeignKey(AILearningSession, on_delete=models.CASCADE, related_name="messages")
    sender = models.CharField(max_length=20)  # user / assistant / system
    content = models.TextField()
    tokens = models.IntegerField(default=0)
    created_at = models.DateTimeField()


class OperationLog(Owned):
    operation_type = models.CharField(max_length=100)
    status = models.CharField(max_length=20)
    target = models.CharField(max_length=500, blank=True)
    details = models.JSONField(default=dict)
    error_message = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True)
    finished_at = models.DateTimeField(null=True)
    duration_ms = models.IntegerField(null=True)


class RoadmapItem(Owned):
    title = models.CharField(max_length=300)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=20, default="planned")
    priority = models.CharField(max_length=20, default="medium")
    category = models.CharField(max_length=100, blank=True)
    target_date = models.DateField(null=True)
    progress = models.IntegerField(default=0)
    dependencies = models.ManyToManyField("self", symmetrical=False, blank=True, related_name="dependents")


class Template(Owned):
    name = models.CharField(max_length=200)
    template_type = models.CharField(max_length=50)
    content = models.TextField()
    variables = models.JSONField(default=dict)
    is_active = models.BooleanField(default=True)
    version = models.IntegerField(default=1)


class AccessibilityScan(Owned):
    url = models.URLField(max_length=2000)
    standard = models.CharField(max_length=20, default="WCAG2AA")
    status = models.CharField(max_length=20)
    score = models.DecimalField(max_digits=5, decimal_places=2, null=True)
    issues_count = models.IntegerField(default=0)
    results = models.JSONField(default=dict)
    scanned_at = models.DateTimeField(null=True)


class TestSuite(Owned):
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    base_url = models.URLField(max_length=2000, blank=True)
    config = models.JSONField(default=dict)
    is_active = models.BooleanField(default=True)


class TestRun(models.Model):
    suite = models.ForeignKey(TestSuite, on_delete=models.CASCADE, related_name="runs")
    status = models.CharField(max_length=20)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True)
    duration_ms = models.IntegerField(null=True)
    passed = models.IntegerField(default=0)
    failed = models.IntegerField(default=0)
    skipped = models.IntegerField(default=0)
    results = models.JSONField(default=dict)


class Workflow(Owned):
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    active = models.BooleanField(default=False)
    trigger_type = models.CharField(max_length=20, default="manual")
    settings = models.JSONField(default=dict)


class WorkflowNode(models.Model):
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="nodes")
    node_key = models.CharField(max_length=200)
    name = models.CharField(max_length=200)
    node_type = models.CharField(max_length=200)
    position_x = models.FloatField(default=0)
    position_y = models.FloatField(default=0)
    parameters = models.JSONField(default=dict)
    credential = models.ForeignKey("Credential", null=True, blank=True, on_delete=models.SET_NULL)


class WorkflowConnection(models.Model):
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="connections")
    source_node = models.CharField(max_length=200)
    target_node = models.CharField(max_length=200)
    output_index = models.IntegerField(default=0)


class Execution(models.Model):
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="executions")
    execution_uuid = models.UUIDField(default=uuid.uuid4, unique=True)
    status = models.CharField(max_length=20)
    mode = models.CharField(max_length=20, default="manual")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True)
    data = models.JSONField(default=dict)
    error = models.TextField(blank=True)


class ExecutionLog(models.Model):
    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="logs")
    level = models.CharField(max_length=10, default="info")
    message = models.TextField()
    node_key = models.CharField(max_length=200, blank=True)
    timestamp = models.DateTimeField()


class Credential(Owned):
    name = models.CharField(max_length=200)
    credential_type = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    data = models.JSONField(default=dict)  # API keys, passwords: secret


class WorkflowTemplate(Owned):
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    category = models.CharField(max_length=100, blank=True)
    definition = models.JSONField(default=dict)
    is_public = models.BooleanField(default=False)
    usage_count = models.IntegerField(default=0)


class Collection(Owned):
    name = models.CharField(max_length=500)
    description = models.TextField(blank=True)
    postman_id = models.CharField(max_length=200, blank=True)
    auth = models.JSONField(null=True)  # secret: passwords and tokens
    variables = models.JSONField(default=list)


class ApiRequest(models.Model):
    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="requests")
    name = models.CharField(max_length=1000)
    folder = models.CharField(max_length=1000, blank=True)
    method = models.CharField(max_length=20, default="GET")
    url = models.TextField()
    headers = models.JSONField(default=list)
    body = models.JSONField(null=True)


class MockEndpoint(models.Model):
    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="mocks")
    request = models.ForeignKey(ApiRequest, null=True, on_delete=models.SET_NULL)
    name = models.CharField(max_length=1000)
    method = models.CharField(max_length=20, default="GET")
    path = models.CharField(max_length=2000)
    status_code = models.IntegerField(default=200)
    body = models.TextField(blank=True)
    delay_ms = models.IntegerField(default=0)
    is_active = models.BooleanField(default=True)


class Environment(Owned):
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    is_active = models.BooleanField(default=False)


class EnvVariable(models.Model):
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="variables")
    key = models.CharField(max_length=500)
    value = models.TextField(blank=True)  # secret when is_secret
    is_secret = models.BooleanField(default=False)
    enabled = models.BooleanField(default=True)


class RequestHistory(Owned):
    method = models.CharField(max_length=20)
    url = models.TextField()
    status_code = models.IntegerField(null=True)
    duration_ms = models.IntegerField(null=True)
    response_body = models.TextField(blank=True)
    collection = models.ForeignKey(Collection, null=True, on_delete=models.SET_NULL)
    environment = models.ForeignKey(Environment, null=True, on_delete=models.SET_NULL)


class Task(Owned):
    title = models.CharField(max_length=300)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=20, default="todo")
    priority = models.CharField(max_length=20, default="medium")
    due_date = models.DateField(null=True)
    estimate_hours = models.DecimalField(max_digits=6, decimal_places=2, null=True)


class TaskComment(models.Model):
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="comments")
    author = models.CharField(max_length=200)
    text = models.TextField()
    created_at = models.DateTimeField()


class JSONStore(Owned):
    key = models.CharField(max_length=500, unique=True)
    data = models.JSONField()
    description = models.TextField(blank=True)
