"""Notifications: the SES identity that alert emails are sent from. SES mails a verification link to the
address on creation; until it is clicked (and while the account is in the SES sandbox, for every recipient
too) sending is refused."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


@dataclass
class NotificationsArgs:
    sender_email: str


class Notifications(pulumi.ComponentResource):
    def __init__(self, name: str, args: NotificationsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fraud:platform:Notifications", name, None, opts)
        if "@" not in args.sender_email:
            raise ValueError(f"senderEmail is not an email address: {args.sender_email!r}")
        self.sender = args.sender_email
        self.identity = aws.sesv2.EmailIdentity(
            f"{name}-sender", email_identity=args.sender_email, opts=pulumi.ResourceOptions(parent=self)
        )
        self.register_outputs({"sender_identity_arn": self.identity.arn})
