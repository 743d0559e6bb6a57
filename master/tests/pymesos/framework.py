"""An unmodified pymesos framework: launch `echo hello`, follow it to
TASK_FINISHED with explicit acknowledgements, then tear down.

Usage: python framework.py HOST:PORT [PRINCIPAL SECRET]
With a principal and secret the driver authenticates (HTTP basic) and the
FrameworkInfo names the principal, as a Mesos framework does.
Prints one line per event; exits 0 when the task finished.
"""

import sys
import threading
import uuid

from addict import Dict
from pymesos import MesosSchedulerDriver, Scheduler


class EchoScheduler(Scheduler):
    def __init__(self):
        self.launched = False
        self.done = threading.Event()
        self.result = 1
        self.task_id = "pymesos-" + uuid.uuid4().hex[:8]

    def registered(self, driver, framework_id, master_info):
        print("REGISTERED", framework_id["value"], flush=True)

    def resourceOffers(self, driver, offers):
        for offer in offers:
            cpus = sum(r.scalar.value for r in offer.resources if r.name == "cpus")
            mem = sum(r.scalar.value for r in offer.resources if r.name == "mem")
            if self.launched or cpus < 0.1 or mem < 32:
                driver.declineOffer(offer.id, Dict(refuse_seconds=60))
                continue
            task = Dict()
            task.task_id.value = self.task_id
            task.agent_id.value = offer.agent_id.value
            task.name = "echo"
            task.command.value = "echo hello"
            task.resources = [
                dict(name="cpus", type="SCALAR", scalar={"value": 0.1}),
                dict(name="mem", type="SCALAR", scalar={"value": 32}),
            ]
            driver.launchTasks(offer.id, [task], Dict(refuse_seconds=60))
            self.launched = True
            print("LAUNCHED", self.task_id, flush=True)

    def statusUpdate(self, driver, update):
        print("UPDATE", update.state, flush=True)
        driver.acknowledgeStatusUpdate(update)
        if update.state == "TASK_FINISHED":
            self.result = 0
            self.done.set()
        elif update.state in ("TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR", "TASK_DROPPED"):
            self.result = 2
            self.done.set()

    def error(self, driver, message):
        print("ERROR", message, flush=True)
        self.done.set()


def main():
    master = sys.argv[1]
    principal, secret = (sys.argv[2], sys.argv[3]) if len(sys.argv) > 3 else (None, None)
    framework = Dict()
    framework.user = "root"
    framework.name = "pymesos-echo"
    framework.hostname = "localhost"
    if principal is not None:
        framework.principal = principal
    scheduler = EchoScheduler()
    driver = MesosSchedulerDriver(
        scheduler,
        framework,
        master,
        use_addict=True,
        implicit_acknowledgements=False,
        principal=principal,
        secret=secret,
    )
    driver.start()
    finished = scheduler.done.wait(60)
    driver.stop()  # not a failover: TEARDOWN
    driver.join()
    if not finished:
        print("TIMEOUT", flush=True)
        return 3
    print("EXIT", scheduler.result, flush=True)
    return scheduler.result


if __name__ == "__main__":
    sys.exit(main())
