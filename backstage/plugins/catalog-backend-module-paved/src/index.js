'use strict';
// Backend module for the catalog: Paved's claims as Resource entities.
//
//   backend.add(import('@backstage/plugin-kubernetes-backend'));
//   backend.add(import('@paved/backstage-plugin-catalog-backend-module-paved'));
//
// Config (all optional):
//   catalog.providers.paved.schedule   { frequency: { seconds: 5 }, timeout: { seconds: 30 } }
//   catalog.providers.paved.clusters   [names]  default: every cluster the Kubernetes backend has
//   catalog.providers.paved.readTeams  true     owners for namespaces that no ServiceClaim made

const {
  createBackendModule,
  coreServices,
  readSchedulerServiceTaskScheduleDefinitionFromConfig,
} = require('@backstage/backend-plugin-api');
const { catalogProcessingExtensionPoint } = require('@backstage/plugin-catalog-node');
const { PavedEntityProvider } = require('./provider');
const { toEntities, condition, health } = require('./entities');

// Short, so a change in the cluster shows within seconds and a deleted claim goes.
const DEFAULT_SCHEDULE = { frequency: { seconds: 5 }, timeout: { seconds: 30 }, initialDelay: { seconds: 1 } };

const catalogModulePaved = createBackendModule({
  pluginId: 'catalog',
  moduleId: 'paved',
  register(env) {
    env.registerInit({
      deps: {
        catalog: catalogProcessingExtensionPoint,
        config: coreServices.rootConfig,
        discovery: coreServices.discovery,
        auth: coreServices.auth,
        logger: coreServices.logger,
        scheduler: coreServices.scheduler,
      },
      async init({ catalog, config, discovery, auth, logger, scheduler }) {
        const own = config.getOptionalConfig('catalog.providers.paved');
        const schedule = own?.has('schedule')
          ? readSchedulerServiceTaskScheduleDefinitionFromConfig(own.getConfig('schedule'))
          : DEFAULT_SCHEDULE;
        const provider = new PavedEntityProvider({
          discovery,
          auth,
          logger,
          clusters: own?.getOptionalStringArray('clusters'),
          readTeams: own?.getOptionalBoolean('readTeams') ?? true,
        });
        // Refreshes start once the catalog has connected the provider.
        provider.onConnect = () =>
          scheduler.scheduleTask({
            id: 'paved-entity-provider',
            ...schedule,
            fn: async () => {
              try {
                await provider.refresh();
              } catch (e) {
                logger.error(`Paved entity provider: ${e instanceof Error ? e.message : e}`);
              }
            },
          });
        catalog.addEntityProvider(provider);
      },
    });
  },
});

module.exports = { default: catalogModulePaved, PavedEntityProvider, toEntities, condition, health };
