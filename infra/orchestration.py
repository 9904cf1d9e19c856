"""DagsterService: Dagster itself in AWS, in the same `pulumi up`. An ECR repository and the image built from the
repository's `Dockerfile` (tag = a hash of the build context, so a code change is a new tag, new task definition
revisions and a rolling update), an ECS cluster, the webserver and the daemon as Fargate services in the private
subnets (no public IP), and the run-worker task definition the daemon's EcsRunLauncher starts each run as.

The way in to the UI is ECS Exec + SSM port forwarding to the webserver task: no load balancer, no bastion, and
the webserver's security group admits nothing. The instance storage is the `dagster` database on the project's
RDS instance, credentials injected from the RDS-managed secret as ECS secrets, TLS verify-full.

The platform database: the daemon and the run workers log in as `fraud_writer`, the review app as `fraud_review`,
with IAM database authentication (`FRAUD_DB_ROLE`, `rds-db:connect` on that one role) and verify-full against the
bundle in the image (`FRAUD_DB_SSL_ROOT_CERT`). The daemon's task alone is the migration step: it alone gets
`FRAUD_DB_SECRET_ARN` and may read the master secret. The webserver runs no asset or sensor: no database login."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_docker_build as docker_build
from database import CA_BUNDLE_IN_IMAGE, db_login
from iam import db_connect_statement, ecs_task_trust, kms_statement, objects, policy_document, statement
from logs import log_group

WEB_PORT = 3000
REVIEW_PORT = 8100  # `fraud review` (fraud/app/review/), on the task's loopback: reached like the UI, by port forward
DAGSTER_DB = "dagster"
RUN_CONTAINER = "run"  # deploy/dagster.yaml: the EcsRunLauncher's container_name
# What the image is built from: a change to any file under these (relative to the build context) is a new tag.
IMAGE_SOURCES = (
    "Dockerfile",
    ".dockerignore",
    "deploy",
    "workspace.yaml",
    "pyproject.toml",
    "fraud",
    "assets",
    "glue",
    "lambdas",
    "dist/wheelhouse",  # `fraud package --wheelhouse`: the wheels the image installs with --no-index
)
SKIPPED = {"__pycache__", ".pytest_cache", ".ruff_cache"}
EXEC_ACTIONS = [
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
]


def context_hash(context: Path, sources: tuple[str, ...] = IMAGE_SOURCES) -> str:
    """SHA-256 over the relative paths and bytes of every file the image is built from (sorted, caches skipped)."""
    digest = hashlib.sha256()
    files: list[Path] = []
    for source in sources:
        path = context / source
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files.extend(
                p for p in path.rglob("*") if p.is_file() and not SKIPPED & set(p.parts) and p.suffix != ".pyc"
            )
    for path in sorted(files):
        digest.update(path.relative_to(context).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def image_tag(context: Path) -> str:
    if not (context / "Dockerfile").is_file():
        raise pulumi.RunError(f"no Dockerfile in the image build context {context}")
    return f"code-{context_hash(context)[:16]}"


@dataclass
class TaskSize:
    cpu: int  # CPU units (1024 = 1 vCPU)
    memory_mb: int


@dataclass
class DagsterServiceArgs:
    image_context: Path  # the repository root: Dockerfile, deploy/dagster.yaml and the code
    private_subnet_ids: list[pulumi.Input[str]]
    webserver_security_group_id: pulumi.Input[str]  # admits nothing
    daemon_security_group_id: pulumi.Input[str]  # the daemon and, copied by the EcsRunLauncher, its run workers
    run_worker_role: aws.iam.Role  # OrchestrationAccess: what a run may touch
    kms_key_arn: pulumi.Input[str]
    raw_bucket: aws.s3.Bucket
    models_bucket: aws.s3.Bucket
    model_name: str
    db_endpoint: pulumi.Input[str]
    db_port: pulumi.Input[int]
    db_secret_arn: pulumi.Input[str]  # the master secret: Dagster's own storage, and the daemon's migration step
    writer_db_user_arn: pulumi.Input[str]  # rds-db:connect as fraud_writer (Database.user_arn)
    review_db_user_arn: pulumi.Input[str]  # rds-db:connect as fraud_review
    writer_db_role: str  # fraud_writer
    review_db_role: str  # fraud_review
    review_key_secret_arn: pulumi.Input[str]  # the review app's sessions and CSRF tokens
    settings_env: dict[str, pulumi.Input[str]]  # FRAUD_* of aws mode for the code location
    region: str
    account: str
    webserver: TaskSize
    daemon: TaskSize
    run_worker: TaskSize
    review: TaskSize
    log_retention_days: int
    force_delete_images: bool = False


class DagsterService(pulumi.ComponentResource):
    def __init__(self, name: str, args: DagsterServiceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fraud:platform:DagsterService", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.tag = image_tag(args.image_context)

        # --- image: ECR repository, built and pushed by the program --------------------------------------------
        self.repository = aws.ecr.Repository(
            f"{name}-dagster",
            image_tag_mutability="IMMUTABLE",  # a tag is one build of the code, never moved
            image_scanning_configuration={"scan_on_push": True},
            encryption_configurations=[{"encryption_type": "KMS", "kms_key": args.kms_key_arn}],
            force_delete=args.force_delete_images,
            opts=child,
        )
        aws.ecr.LifecyclePolicy(
            f"{name}-dagster-keep",
            repository=self.repository.name,
            policy=pulumi.Output.json_dumps(
                {
                    "rules": [
                        {
                            "rulePriority": 1,
                            "description": "keep the 10 most recent images",
                            "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 10},
                            "action": {"type": "expire"},
                        }
                    ]
                }
            ),
            opts=pulumi.ResourceOptions(parent=self.repository),
        )
        token = aws.ecr.get_authorization_token_output(registry_id=self.repository.registry_id)
        self.image = docker_build.Image(
            f"{name}-dagster-image",
            context={"location": str(args.image_context)},
            dockerfile={"location": str(args.image_context / "Dockerfile")},
            platforms=[docker_build.Platform.LINUX_AMD64],
            push=True,
            build_on_preview=False,  # `pulumi preview` needs no Docker
            tags=[pulumi.Output.concat(self.repository.repository_url, ":", self.tag)],
            registries=[
                {
                    "address": self.repository.repository_url,
                    "username": token.user_name,
                    "password": token.password,
                }
            ],
            opts=child,
        )
        self.image_uri = self.image.ref  # <repository>:<tag>@sha256:<digest>: the exact image pushed

        # --- cluster and logs ----------------------------------------------------------------------------------------
        self.cluster = aws.ecs.Cluster(
            f"{name}-dagster", settings=[{"name": "containerInsights", "value": "enabled"}], opts=child
        )
        self.log_groups = {
            role: log_group(
                f"{name}-dagster-{role}-logs",
                f"/ecs/{name}/dagster-{role}",
                args.kms_key_arn,
                args.log_retention_days,
                child,
            )
            for role in ("webserver", "daemon", "run", "review")
        }

        # --- roles ------------------------------------------------------------------------------------------------
        def task_role(suffix: str, statements: list) -> aws.iam.Role:
            """A role ECS tasks of this account assume, with its one inline policy."""
            role = aws.iam.Role(
                f"{name}-dagster-{suffix}",
                assume_role_policy=ecs_task_trust(args.account),
                opts=child,
            )
            aws.iam.RolePolicy(
                f"{name}-dagster-{suffix}-policy",
                role=role.id,
                policy=policy_document(statements),
                opts=pulumi.ResourceOptions(parent=role),
            )
            return role

        tasks_arn = pulumi.Output.format("arn:aws:ecs:{0}:{1}:task/{2}/*", args.region, args.account, self.cluster.name)
        self.execution_role = task_role(
            "execution",
            [
                statement(["ecr:GetAuthorizationToken"], ["*"], "EcrLogin"),
                statement(
                    ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                    [self.repository.arn],
                    "PullImage",
                ),
                statement(
                    ["logs:CreateLogStream", "logs:PutLogEvents"],
                    [pulumi.Output.concat(g.arn, ":log-stream:*") for g in self.log_groups.values()],
                    "WriteLogs",
                ),
                # the ECS `secrets` of the containers: the RDS-managed secret's username and password
                statement(["secretsmanager:GetSecretValue"], [args.db_secret_arn], "InjectDatabaseSecret"),
                statement(["kms:Decrypt"], [args.kms_key_arn], "DecryptSecret"),
            ],
        )

        self.webserver_role = task_role(
            "webserver",
            [
                statement(EXEC_ACTIONS, ["*"], "EcsExecSession"),  # the SSM port forward into this task
                # "Terminate" in the UI: the EcsRunLauncher stops the run's task
                statement(["ecs:DescribeTaskDefinition"], ["*"], "LoadRunLauncher"),
                statement(["ecs:DescribeTasks", "ecs:StopTask"], [tasks_arn], "TerminateRuns"),
            ],
        )

        # --- task definitions ------------------------------------------------------------------------------------
        run_family = f"{name}-dagster-run"
        dagster_env: dict[str, pulumi.Input[str]] = {
            "DAGSTER_PG_HOST": args.db_endpoint,
            "DAGSTER_PG_PORT": pulumi.Output.from_input(args.db_port).apply(str),
            "DAGSTER_PG_DB": DAGSTER_DB,
            "PGSSLMODE": "verify-full",  # libpq: TLS and the server's name checked against the RDS CA in the image
            "DAGSTER_ECS_CLUSTER": self.cluster.name,
            "DAGSTER_RUN_TASK_DEFINITION": run_family,  # the family: the launcher takes its latest revision
            "DAGSTER_RUN_CONTAINER_NAME": RUN_CONTAINER,
            "AWS_REGION": args.region,
            "AWS_DEFAULT_REGION": args.region,
        }
        # the platform database: IAM login as the task's role, the server verified against the image's CA bundle
        environment = dagster_env | dict(args.settings_env) | db_login(args.writer_db_role, CA_BUNDLE_IN_IMAGE)
        secrets = [
            {"name": "DAGSTER_PG_USERNAME", "valueFrom": pulumi.Output.concat(args.db_secret_arn, ":username::")},
            {"name": "DAGSTER_PG_PASSWORD", "valueFrom": pulumi.Output.concat(args.db_secret_arn, ":password::")},
        ]

        def task_definition(
            role: str,
            container: str,
            size: TaskSize,
            task_role_arn,
            command: list[str] | None,
            env: dict[str, pulumi.Input[str]] | None = None,
        ):
            spec: dict = {
                "name": container,
                "image": self.image_uri,
                "essential": True,
                "environment": [{"name": k, "value": v} for k, v in sorted((environment | (env or {})).items())],
                "secrets": secrets,
                "linuxParameters": {"initProcessEnabled": True},  # ECS Exec's agent; reaps zombie processes
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {
                        "awslogs-group": self.log_groups[role].name,
                        "awslogs-region": args.region,
                        "awslogs-stream-prefix": role,
                    },
                },
            }
            if command:
                spec["command"] = command
            return aws.ecs.TaskDefinition(
                f"{name}-dagster-{role}",
                family=f"{name}-dagster-{role}",
                requires_compatibilities=["FARGATE"],
                network_mode="awsvpc",
                cpu=str(size.cpu),
                memory=str(size.memory_mb),
                runtime_platform={"operating_system_family": "LINUX", "cpu_architecture": "X86_64"},
                execution_role_arn=self.execution_role.arn,
                task_role_arn=task_role_arn,
                container_definitions=pulumi.Output.json_dumps([spec]),
                opts=child,
            )

        # the run worker: the launcher replaces the command with `dagster api execute_run ...`
        self.run_task_definition = task_definition(
            "run", RUN_CONTAINER, args.run_worker, args.run_worker_role.arn, None
        )
        run_definitions_arn = pulumi.Output.format(
            "arn:aws:ecs:{0}:{1}:task-definition/{2}:*", args.region, args.account, run_family
        )

        self.daemon_role = task_role(
            "daemon",
            [
                # the EcsRunLauncher: a run is a task of the run-worker family, in this cluster only
                statement(
                    ["ecs:RunTask"],
                    [run_definitions_arn],
                    "LaunchRuns",
                    {"ArnEquals": {"ecs:cluster": self.cluster.arn}},
                ),
                statement(
                    ["ecs:TagResource"],
                    [tasks_arn],
                    "TagRunTasks",
                    {"StringEquals": {"ecs:CreateAction": "RunTask"}},
                ),
                statement(["ecs:DescribeTasks", "ecs:StopTask"], [tasks_arn], "WatchRuns"),
                statement(["ecs:DescribeTaskDefinition"], ["*"], "ResolveRunTaskDefinition"),
                # use_current_ecs_task_config: the run gets the daemon task's subnets and security group
                statement(["ec2:DescribeNetworkInterfaces"], ["*"], "CopyNetworkConfiguration"),
                statement(
                    ["iam:PassRole"],
                    [args.run_worker_role.arn, self.execution_role.arn],
                    "PassRunRoles",
                    {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
                ),
                # the sensors: new raw batches, the promoted model, what the database already loaded
                statement(["s3:ListBucket"], [args.raw_bucket.arn, args.models_bucket.arn], "ListForSensors"),
                statement(
                    ["s3:GetObject"],
                    objects(args.raw_bucket.arn, "transactions/")
                    + [pulumi.Output.concat(args.models_bucket.arn, f"/{args.model_name}/LATEST")],
                    "ReadForSensors",
                ),
                db_connect_statement(args.writer_db_user_arn),
                # the migration step (FRAUD_DB_SECRET_ARN, daemon only): the schema's owner is the master user
                statement(["secretsmanager:GetSecretValue"], [args.db_secret_arn], "MigrationSecret"),
                kms_statement(args.kms_key_arn),
            ],
        )

        # the analyst review app: reads cases, writes verdicts (the fraud database, as its own settings say), finds the
        # promoted model's version, signs its sessions; reached only through ECS Exec's port forward, like the UI
        self.review_role = task_role(
            "review",
            [
                statement(EXEC_ACTIONS, ["*"], "EcsExecSession"),
                statement(
                    ["s3:GetObject"],
                    [pulumi.Output.concat(args.models_bucket.arn, f"/{args.model_name}/LATEST")],
                    "PromotedModel",
                ),
                db_connect_statement(args.review_db_user_arn),
                statement(["secretsmanager:GetSecretValue"], [args.review_key_secret_arn], "SigningKey"),
                kms_statement(args.kms_key_arn),
            ],
        )

        workspace = ["-w", "workspace.yaml"]  # the image's working directory is the repository root
        self.webserver_task_definition = task_definition(
            "webserver",
            "webserver",
            args.webserver,
            self.webserver_role.arn,
            ["dagster-webserver", "-h", "0.0.0.0", "-p", str(WEB_PORT), *workspace],
        )
        self.daemon_task_definition = task_definition(
            "daemon",
            "daemon",
            args.daemon,
            self.daemon_role.arn,
            ["dagster-daemon", "run", *workspace],
            {"FRAUD_DB_SECRET_ARN": args.db_secret_arn},  # the migration step
        )
        self.review_task_definition = task_definition(
            "review",
            "review",
            args.review,
            self.review_role.arn,
            ["fraud", "review", "--port", str(REVIEW_PORT)],
            db_login(args.review_db_role, CA_BUNDLE_IN_IMAGE),
        )

        # --- services ------------------------------------------------------------------------------------------
        def service(role: str, definition, security_group_id, exec_enabled: bool, min_healthy: int, max_percent: int):
            return aws.ecs.Service(
                f"{name}-dagster-{role}",
                name=f"{name}-dagster-{role}",
                cluster=self.cluster.arn,
                task_definition=definition.arn,
                desired_count=1,
                launch_type="FARGATE",
                platform_version="1.4.0",
                network_configuration={
                    "subnets": args.private_subnet_ids,
                    "security_groups": [security_group_id],
                    "assign_public_ip": False,
                },
                enable_execute_command=exec_enabled,
                deployment_minimum_healthy_percent=min_healthy,
                deployment_maximum_percent=max_percent,
                deployment_circuit_breaker={"enable": True, "rollback": True},
                propagate_tags="SERVICE",
                enable_ecs_managed_tags=True,
                wait_for_steady_state=False,
                opts=child,
            )

        # webserver: rolling (the new task starts before the old stops); daemon: never two at once
        self.webserver = service(
            "webserver", self.webserver_task_definition, args.webserver_security_group_id, True, 100, 200
        )
        self.daemon = service("daemon", self.daemon_task_definition, args.daemon_security_group_id, False, 0, 100)
        # review: admits nothing either (the webserver's group); the port forward is its only way in
        self.review = service("review", self.review_task_definition, args.webserver_security_group_id, True, 100, 200)

        self.port_forward_command = pulumi.Output.all(self.cluster.name, self.webserver.name).apply(
            lambda names: port_forward_command(names[0], names[1])
        )
        self.review_port_forward_command = pulumi.Output.all(self.cluster.name, self.review.name).apply(
            lambda names: port_forward_command(names[0], names[1], "review", REVIEW_PORT)
        )
        self.register_outputs(
            {
                "cluster_name": self.cluster.name,
                "image_uri": self.image_uri,
                "webserver_service": self.webserver.name,
                "daemon_service": self.daemon.name,
                "review_service": self.review.name,
            }
        )


def port_forward_command(cluster: str, service: str, container: str = "webserver", port: int = WEB_PORT) -> str:
    """The shell lines that open a service's page (the UI on http://127.0.0.1:3000, the review app on :8100)
    through ECS Exec's SSM channel."""
    return (
        f"TASK=$(aws ecs list-tasks --cluster {cluster} --service-name {service} --query 'taskArns[0]' "
        "--output text | awk -F/ '{print $NF}') && "
        f"RUNTIME=$(aws ecs describe-tasks --cluster {cluster} --tasks $TASK "
        f"--query \"tasks[0].containers[?name=='{container}'].runtimeId | [0]\" --output text) && "
        f"aws ssm start-session --target ecs:{cluster}_${{TASK}}_${{RUNTIME}} "
        f"--document-name AWS-StartPortForwardingSession --parameters portNumber={port},localPortNumber={port}"
    )
