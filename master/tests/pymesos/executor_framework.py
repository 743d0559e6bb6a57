"""An unmodified pymesos scheduler whose tasks run in a custom executor
(executor.py, pymesos' MesosExecutorDriver). It launches TASKS tasks into
one executor; each says "hello <task>" to the scheduler, which answers
"finish <task>" (after the file GO exists, when given); the executor
then says "bye <task>" and finishes it.

Usage: python executor_framework.py HOST:PORT PYTHON TASKS [GO]
Prints one line per event (UPDATE <task> <state> <reason>, MESSAGE <text>,
FAILURE ...); exits 0 when every task finished.
"""

import os
import sys
import threading
import time
import uuid

from addict import Dict
from pymesos import MesosSchedulerDriver, Scheduler, decode_data, encode_data

HERE = os.path.dirname(os.path.abspath(__file__))


class ExecutorScheduler(Scheduler):
    def __init__(self, python, tasks, go):
        self.python = python
        self.tasks = ["task-%d-%s" % (i, uuid.uuid4().hex[:6]) for i in range(tasks)]
        self.go = go
        self.launched = False
        self.finished = set()
        self.done = threading.Event()
        self.result = 1

    def registered(self, driver, framework_id, master_info):
        print("REGISTERED", framework_id["value"], flush=True)

    def executor(self):
        e = Dict()
        e.executor_id.value = "echo-executor"
        e.type = "CUSTOM"
        e.name = "pymesos echo executor"
        e.command.value = "%s %s" % (self.python, os.path.join(HERE, "executor.py"))
        e.resources = [
            dict(name="cpus", type="SCALAR", scalar={"value": 0.1}),
            dict(name="mem", type="SCALAR", scalar={"value": 64}),
        ]
        return e

    def resourceOffers(self, driver, offers):
        for offer in offers:
            if self.launched:
                driver.declineOffer(offer.id, Dict(refuse_seconds=60))
                continue
            tasks = []
            for task_id in self.tasks:
                task = Dict()
                task.task_id.value = task_id
                task.agent_id.value = offer.agent_id.value
                task.name = task_id
                task.executor = self.executor()
                task.resources = [
                    dict(name="cpus", type="SCALAR", scalar={"value": 0.1}),
                    dict(name="mem", type="SCALAR", scalar={"value": 32}),
                ]
                tasks.append(task)
            driver.launchTasks(offer.id, tasks, Dict(refuse_seconds=60))
            self.launched = True
            print("LAUNCHED", " ".join(self.tasks), flush=True)

    def frameworkMessage(self, driver, executor_id, agent_id, message):
        text = decode_data(message).decode()
        print("MESSAGE", executor_id["value"], text, flush=True)
        verb, task_id = text.split(" ", 1)
        if verb == "hello":
            threading.Thread(target=self.finish, args=(driver, executor_id, agent_id, task_id), daemon=True).start()

    def finish(self, driver, executor_id, agent_id, task_id):
        while self.go and not os.path.exists(self.go):
            time.sleep(0.1)
        driver.sendFrameworkMessage(executor_id, agent_id, encode_data(("finish " + task_id).encode()))

    def statusUpdate(self, driver, update):
        print("UPDATE", update.task_id.value, update.state, update.get("reason", "-"), flush=True)
        driver.acknowledgeStatusUpdate(update)
        if update.state == "TASK_FINISHED":
            self.finished.add(update.task_id.value)
            if self.finished == set(self.tasks):
                self.result = 0
                self.done.set()
        elif update.state in ("TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR", "TASK_DROPPED"):
            self.result = 2
            self.done.set()

    def executorLost(self, driver, executor_id, agent_id, status):
        print("FAILURE", executor_id["value"], status, flush=True)

    def error(self, driver, message):
        print("ERROR", message, flush=True)
        self.done.set()


def main():
    master, python, tasks = sys.argv[1], sys.argv[2], int(sys.argv[3])
    go = sys.argv[4] if len(sys.argv) > 4 else None
    framework = Dict()
    framework.user = "root"
    framework.name = "pymesos-executor"
    framework.hostname = "localhost"
    framework.checkpoint = True
    scheduler = ExecutorScheduler(python, tasks, go)
    driver = MesosSchedulerDriver(scheduler, framework, master, use_addict=True, implicit_acknowledgements=False)
    driver.start()
    finished = scheduler.done.wait(120)
    driver.stop()
    driver.join()
    if not finished:
        print("TIMEOUT", flush=True)
        return 3
    print("EXIT", scheduler.result, flush=True)
    return scheduler.result


if __name__ == "__main__":
    sys.exit(main())
