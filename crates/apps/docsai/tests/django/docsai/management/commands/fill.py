"""`python manage.py fill [--scale N] [--seed S]`: fills the fixture database
deterministically (a fixed random seed, fixed timestamps), so the same command always
makes the same rows, ids and values.

Scale 1 (the default) makes about 200 rows for the tests; each unit of scale adds about
200 more, so `--scale 500` makes about 100,000 rows for the migration benchmark.
Three users have a profile (an appointment360 uuid); a fourth, "legacy", has none, and
owns a few records, which the migration reports as owned by no one.
"""
import datetime
import decimal
import random
import uuid

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from docsai import models as m

BASE = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
STATUSES = ["queued", "running", "success", "error", "cancelled"]


class Command(BaseCommand):
    help = "Fill the docsai fixture database deterministically."

    def add_arguments(self, parser):
        parser.add_argument("--scale", type=int, default=1)
        parser.add_argument("--seed", type=int, default=12)

    def handle(self, *args, scale, seed, **options):
        if scale < 1:
            raise SystemExit("--scale must be at least 1")
        self.rng = random.Random(seed)
        with transaction.atomic():
            self.fill(scale)
        total = sum(
            model.objects.count()
            for model in [
                m.KnowledgeBase, m.AILearningSession, m.ChatMessage, m.OperationLog,
                m.RoadmapItem, m.Template, m.AccessibilityScan, m.TestSuite, m.TestRun,
                m.Workflow, m.WorkflowNode, m.WorkflowConnection, m.Execution,
                m.ExecutionLog, m.Credential, m.WorkflowTemplate, m.Collection,
                m.ApiRequest, m.MockEndpoint, m.Environment, m.EnvVariable,
                m.RequestHistory, m.Task, m.TaskComment, m.JSONStore,
            ]
        )
        self.stdout.write(f"filled {total} rows (scale {scale}, seed {seed})")

    # Deterministic values -------------------------------------------------------------
    def uuid(self):
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def when(self):
        # Whole seconds for some rows, microseconds for others: both text forms Django
        # writes ("2025-01-02 03:04:05" and "2025-01-02 03:04:05.123456").
        t = BASE + datetime.timedelta(seconds=self.rng.randrange(0, 365 * 86400))
        if self.rng.random() < 0.5:
            t += datetime.timedelta(microseconds=self.rng.randrange(1, 1_000_000))
        return t

    def day(self):
        return (BASE + datetime.timedelta(days=self.rng.randrange(0, 730))).date()

    def money(self, digits):
        return decimal.Decimal(self.rng.randrange(0, 10**digits)) / 100

    def owned(self, owner):
        t = self.when()
        return {"created_by": owner, "created_at": t, "updated_at": t + datetime.timedelta(hours=1)}

    def pick(self, seq):
        return seq[self.rng.randrange(len(seq))]

    # The rows -------------------------------------------------------------------------
    def fill(self, scale):
        User = get_user_model()
        owners = []
        for i, name in enumerate(["ada", "grace", "linus"]):
            u = User.objects.create(username=name, email=f"{name}@example.com", password="!", date_joined=BASE)
            m.UserProfile.objects.create(user=u, uuid=self.uuid())
            owners.append(u)
        legacy = User.objects.create(username="legacy", email="legacy@example.com", password="!", date_joined=BASE)

        def owner(i):
            # Every 50th record (the 8th, 58th...) belongs to the user without a profile.
            return legacy if i % 50 == 7 else owners[i % len(owners)]

        n = scale
        kb = [
            m.KnowledgeBase(
                title=f"Article {i} ✓", slug=f"article-{i}", content="# Title\n\nBody " * 3,
                category=self.pick(["api", "guides", "faq", ""]), tags=["a", f"t{i % 7}"],
                is_published=i % 2 == 0, views=self.rng.randrange(0, 10000),
                metadata={"source": "import", "rank": i, "nested": {"ok": True, "none": None}},
                **self.owned(owner(i)),
            )
            for i in range(10 * n)
        ]
        m.KnowledgeBase.objects.bulk_create(kb, batch_size=500)

        sessions = m.AILearningSession.objects.bulk_create(
            [
                m.AILearningSession(
                    title=f"Session {i}", topic=self.pick(["rust", "sql", "s3"]),
                    model_name="gpt-x", status=self.pick(["active", "completed", "archived"]),
                    total_cost=self.money(6), total_tokens=self.rng.randrange(0, 100000),
                    context={"lang": "en"}, ended_at=self.when() if i % 2 else None,
                    **self.owned(owner(i)),
                )
                for i in range(3 * n)
            ],
            batch_size=500,
        )
        m.ChatMessage.objects.bulk_create(
            [
                m.ChatMessage(session=s, sender=self.pick(["user", "assistant", "system"]),
                              content=f"message {j} of {s.title}", tokens=j * 10,
                              created_at=self.when())
                for s in sessions for j in range(8)
            ],
            batch_size=1000,
        )

        m.OperationLog.objects.bulk_create(
            [
                m.OperationLog(
                    operation_type=self.pick(["sync", "scan", "import"]),
                    status=self.pick(["pending", "running", "succeeded", "failed"]),
                    target=f"/docs/{i}", details={"items": i}, error_message="",
                    started_at=self.when(), finished_at=None if i % 3 == 0 else self.when(),
                    duration_ms=None if i % 3 == 0 else self.rng.randrange(1, 60000),
                    **self.owned(owner(i)),
                )
                for i in range(10 * n)
            ],
            batch_size=500,
        )

        roadmap = m.RoadmapItem.objects.bulk_create(
            [
                m.RoadmapItem(
                    title=f"Roadmap {i}", description="why", status=self.pick(["planned", "in_progress", "done"]),
                    priority=self.pick(["low", "medium", "high", "critical"]), category="core",
                    target_date=self.day() if i % 4 else None, progress=self.rng.randrange(0, 101),
                    **self.owned(owners[i % len(owners)]),
                )
                for i in range(5 * n)
            ],
            batch_size=500,
        )
        # Each item depends on up to two earlier items of the same owner.
        through = m.RoadmapItem.dependencies.through
        deps = []
        for i, item in enumerate(roadmap):
            for back in (3, 6):
                if i >= back and i % 2 == 0:
                    deps.append(through(from_roadmapitem=item, to_roadmapitem=roadmap[i - back]))
        through.objects.bulk_create(deps, batch_size=1000)

        m.Template.objects.bulk_create(
            [
                m.Template(name=f"Template {i}", template_type="document", content="Hello {{name}}",
                           variables={"name": "world"}, is_active=i % 3 != 0, version=1 + i % 4,
                           **self.owned(owner(i)))
                for i in range(3 * n)
            ]
        )
        m.AccessibilityScan.objects.bulk_create(
            [
                m.AccessibilityScan(url=f"https://docs.example.com/p/{i}", standard="WCAG2AA",
                                    status="completed", score=None if i % 5 == 0 else self.money(4) % 100,
                                    issues_count=i % 9, results={"violations": [{"id": "color-contrast"}]},
                                    scanned_at=self.when(), **self.owned(owner(i)))
                for i in range(3 * n)
            ]
        )

        suites = m.TestSuite.objects.bulk_create(
            [
                m.TestSuite(name=f"Suite {i}", base_url="https://api.example.com", config={"retries": 1},
                            is_active=True, **self.owned(owner(i)))
                for i in range(2 * n)
            ]
        )
        m.TestRun.objects.bulk_create(
            [
                m.TestRun(suite=s, status=self.pick(["passed", "failed", "error"]), started_at=self.when(),
                          finished_at=self.when(), duration_ms=self.rng.randrange(1, 100000),
                          passed=j, failed=j % 2, skipped=0, results={"run": j})
                for s in suites for j in range(5)
            ],
            batch_size=1000,
        )

        creds = m.Credential.objects.bulk_create(
            [
                m.Credential(name=f"Credential {i}", credential_type=self.pick(["httpBasicAuth", "apiKey"]),
                             data={"user": f"svc{i}", "password": f"fixture-secret-{i}"},
                             **self.owned(owners[i % len(owners)]))
                for i in range(2 * n)
            ]
        )
        workflows = m.Workflow.objects.bulk_create(
            [
                m.Workflow(name=f"Workflow {i}", description="", active=i % 2 == 0,
                           trigger_type=self.pick(["manual", "webhook", "schedule"]), settings={"timezone": "UTC"},
                           **self.owned(owners[i % len(owners)]))
                for i in range(2 * n)
            ]
        )
        nodes, conns, execs = [], [], []
        for w_i, w in enumerate(workflows):
            for k in range(4):
                nodes.append(m.WorkflowNode(workflow=w, node_key=f"node{k}", name=f"Node {k}",
                                            node_type=self.pick(["http", "code", "if", "set"]),
                                            position_x=k * 200.0, position_y=100.5, parameters={"k": k},
                                            credential=creds[w_i] if k == 1 else None))
            for k in range(3):
                conns.append(m.WorkflowConnection(workflow=w, source_node=f"node{k}", target_node=f"node{k + 1}"))
            for k in range(5):
                execs.append(m.Execution(workflow=w, execution_uuid=self.uuid(), status=self.pick(STATUSES),
                                         mode="manual", started_at=self.when(),
                                         finished_at=self.when() if k % 2 else None, data={"k": k}, error=""))
        m.WorkflowNode.objects.bulk_create(nodes, batch_size=1000)
        m.WorkflowConnection.objects.bulk_create(conns, batch_size=1000)
        execs = m.Execution.objects.bulk_create(execs, batch_size=1000)
        m.ExecutionLog.objects.bulk_create(
            [
                m.ExecutionLog(execution=e, level=self.pick(["debug", "info", "warning", "error"]),
                               message=f"step {j}", node_key=f"node{j}", timestamp=self.when())
                for e in execs for j in range(4)
            ],
            batch_size=1000,
        )

        m.WorkflowTemplate.objects.bulk_create(
            [
                m.WorkflowTemplate(name=f"Workflow template {i}", category="starter",
                                   definition={"nodes": [], "connections": []}, is_public=i % 2 == 0,
                                   usage_count=i, **self.owned(owner(i)))
                for i in range(2 * n)
            ]
        )

        collections = m.Collection.objects.bulk_create(
            [
                m.Collection(name=f"API {i}", postman_id=str(self.uuid()),
                             auth={"type": "bearer", "bearer": [{"key": "token", "value": f"fixture-token-{i}", "type": "string"}]},
                             variables=[{"key": "base", "value": "https://api.example.com"}],
                             **self.owned(owners[i % len(owners)]))
                for i in range(n)
            ]
        )
        reqs = m.ApiRequest.objects.bulk_create(
            [
                m.ApiRequest(collection=c, name=f"Request {j}", folder="Users/Admin" if j % 2 else "",
                             method=self.pick(["GET", "POST", "DELETE"]), url=f"{{{{base}}}}/users/{j}",
                             headers=[{"key": "Accept", "value": "application/json"}],
                             body={"mode": "raw", "raw": "{}"} if j % 3 == 0 else None)
                for c in collections for j in range(10)
            ],
            batch_size=1000,
        )
        m.MockEndpoint.objects.bulk_create(
            [
                m.MockEndpoint(collection=r.collection, request=r, name=f"Example of {r.name}",
                               method=r.method, path=f"/users/{k}", status_code=200, body='{"ok": true}',
                               delay_ms=0, is_active=True)
                for k, r in enumerate(reqs) if k % 3 == 0
            ],
            batch_size=1000,
        )

        envs = m.Environment.objects.bulk_create(
            [
                m.Environment(name=f"Env {i}", is_active=i == 0, **self.owned(owners[i % len(owners)]))
                for i in range(n)
            ]
        )
        m.EnvVariable.objects.bulk_create(
            [
                m.EnvVariable(environment=e, key=f"VAR_{k}",
                              value=f"fixture-env-secret-{e_i}-{k}" if k == 0 else f"value-{k}",
                              is_secret=k == 0, enabled=k != 4)
                for e_i, e in enumerate(envs) for k in range(5)
            ],
            batch_size=1000,
        )

        m.RequestHistory.objects.bulk_create(
            [
                m.RequestHistory(method="GET", url=f"https://api.example.com/users/{i}",
                                 status_code=None if i % 7 == 0 else 200, duration_ms=i,
                                 response_body="{}", collection=collections[i % n] if i % 2 else None,
                                 environment=envs[i % n] if i % 3 == 0 else None,
                                 **self.owned(collections[i % n].created_by))
                for i in range(10 * n)
            ],
            batch_size=1000,
        )

        tasks = m.Task.objects.bulk_create(
            [
                m.Task(title=f"Task {i}", status=self.pick(["todo", "in_progress", "done"]),
                       priority="medium", due_date=self.day() if i % 2 else None,
                       estimate_hours=self.money(4) if i % 3 else None, **self.owned(owner(i)))
                for i in range(5 * n)
            ]
        )
        m.TaskComment.objects.bulk_create(
            [
                m.TaskComment(task=t, author=t.created_by.username, text=f"comment {j}", created_at=self.when())
                for t in tasks for j in range(3)
            ],
            batch_size=1000,
        )

        m.JSONStore.objects.bulk_create(
            [
                m.JSONStore(key=f"settings/{i}", data={"theme": "dark", "n": i, "list": [1, 2.5, "x", None]},
                            **self.owned(owner(i)))
                for i in range(3 * n)
            ]
        )
