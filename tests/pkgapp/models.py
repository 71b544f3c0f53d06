from django.db import models


class Thing(models.Model):
    label = models.CharField(max_length=20)
