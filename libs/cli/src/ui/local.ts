// The dashboard of a system on this machine (`adco up`, `npm start`): its own clients of the trainer
// and the evaluator, with the credentials the CLI calls that system with, and its object store.
import { ObjectStore } from "@adco/storage";
import { evaluatorAt, trainerAt } from "../runs.js";
import type { LocalSystem } from "../system.js";
import { type Dashboard, startDashboard } from "./server.js";

/** On `port`, or on a free one when something else holds it (the URL printed says which). */
export async function startSystemDashboard(system: LocalSystem, port: number): Promise<Dashboard> {
  const trainer = trainerAt(system.services.trainer.address, system.credentials("trainer"));
  const evaluator = evaluatorAt(system.services.evaluator.address, system.credentials("evaluator"));
  const on = (port: number) =>
    startDashboard({
      trainer,
      evaluator,
      store: { store: new ObjectStore(system.s3) },
      datasetsBucket: "adco-datasets",
      port,
    });
  try {
    const dashboard = await on(port).catch((e: NodeJS.ErrnoException) => {
      if (e.code === "EADDRINUSE" && port !== 0) return on(0);
      throw e;
    });
    return {
      ...dashboard,
      close: async () => {
        await dashboard.close();
        trainer.close();
        evaluator.close();
      },
    };
  } catch (e) {
    trainer.close();
    evaluator.close();
    throw e;
  }
}
