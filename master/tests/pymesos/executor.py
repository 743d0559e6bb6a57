"""An unmodified pymesos executor (MesosExecutorDriver): for each task it
reports TASK_RUNNING and sends the scheduler "hello <task>"; the
scheduler's "finish <task>" finishes the task (TASK_FINISHED, after
"bye <task>" back). Launched by executor_framework.py through Keel's agent.
"""

import sys
import threading

from pymesos import Executor, MesosExecutorDriver, decode_data, encode_data


class EchoExecutor(Executor):
    def __init__(self):
        self.lock = threading.Lock()

    def status(self, driver, task_id, state):
        driver.sendStatusUpdate(dict(task_id=dict(value=task_id), state=state))

    def launchTask(self, driver, task):
        task_id = task["task_id"]["value"]
        self.status(driver, task_id, "TASK_RUNNING")
        driver.sendFrameworkMessage(encode_data(("hello " + task_id).encode()))

    def frameworkMessage(self, driver, message):
        text = decode_data(message).decode()
        verb, task_id = text.split(" ", 1)
        if verb == "finish":
            driver.sendFrameworkMessage(encode_data(("bye " + task_id).encode()))
            self.status(driver, task_id, "TASK_FINISHED")

    def killTask(self, driver, task_id):
        self.status(driver, task_id["value"], "TASK_KILLED")


if __name__ == "__main__":
    driver = MesosExecutorDriver(EchoExecutor())
    driver.run()
