// main.json is this template as ARM JSON, written by hand to match what `bicep build` emits:
// change both together.

metadata description = 'An Azure Machine Learning workspace with its Storage account (StorageV2), Key Vault, Application Insights on a Log Analytics workspace, and an optional Container Registry.'

@description('Short project name, lower case letters and digits: every resource name derives from it.')
@minLength(3)
@maxLength(12)
param baseName string

@description('The environment these resources serve.')
@allowed([
  'dev'
  'qa'
  'prod'
])
param environment string

@description('Region of every resource; the resource group\'s by default.')
param location string = resourceGroup().location

@description('Name of the Azure Machine Learning workspace.')
@minLength(3)
@maxLength(33)
param workspaceName string = 'mlw-${baseName}-${environment}'

@description('Replication of the workspace\'s default Storage account.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_RAGRS'
  'Standard_GZRS'
])
param storageSku string = 'Standard_LRS'

@description('Key Vault pricing tier.')
@allowed([
  'standard'
  'premium'
])
param keyVaultSku string = 'standard'

@description('Days a deleted Key Vault (and its secrets) can still be recovered.')
@minValue(7)
@maxValue(90)
param keyVaultSoftDeleteRetentionInDays int = 7

@description('Days the Log Analytics workspace keeps logs and telemetry.')
@minValue(30)
@maxValue(730)
param logRetentionInDays int = 30

@description('Create a Container Registry for the workspace\'s environment images.')
param enableContainerRegistry bool = false

@description('Container Registry tier, when one is created.')
@allowed([
  'Basic'
  'Standard'
  'Premium'
])
param containerRegistrySku string = 'Basic'

@description('Whether the workspace is reachable from public networks.')
@allowed([
  'Enabled'
  'Disabled'
])
param publicNetworkAccess string = 'Enabled'

@description('Tags on every resource, besides environment and workload.')
param tags object = {}

var suffix = uniqueString(resourceGroup().id)
var compactName = toLower(replace(baseName, '-', ''))
var storageAccountName = take('st${compactName}${environment}${suffix}', 24)
var keyVaultName = take('kv-${baseName}-${environment}-${suffix}', 24)
var logAnalyticsName = 'log-${baseName}-${environment}'
var applicationInsightsName = 'appi-${baseName}-${environment}'
var containerRegistryName = take('cr${compactName}${environment}${suffix}', 50)
var allTags = union(tags, {
  environment: environment
  workload: 'mlstage'
})

resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: logAnalyticsName
  location: location
  tags: allTags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: logRetentionInDays
  }
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: applicationInsightsName
  location: location
  tags: allTags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logAnalytics.id
    IngestionMode: 'LogAnalytics'
  }
}

resource storageAccount 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: storageAccountName
  location: location
  tags: allTags
  kind: 'StorageV2'
  sku: {
    name: storageSku
  }
  properties: {
    accessTier: 'Hot'
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
  }
}

resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: keyVaultName
  location: location
  tags: allTags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: keyVaultSku
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: keyVaultSoftDeleteRetentionInDays
    // Purge protection cannot be switched off again, so only production turns it on.
    enablePurgeProtection: environment == 'prod' ? true : null
  }
}

resource containerRegistry 'Microsoft.ContainerRegistry/registries@2023-07-01' = if (enableContainerRegistry) {
  name: containerRegistryName
  location: location
  tags: allTags
  sku: {
    name: containerRegistrySku
  }
  properties: {
    adminUserEnabled: false
  }
}

resource workspace 'Microsoft.MachineLearningServices/workspaces@2025-12-01' = {
  name: workspaceName
  location: location
  tags: allTags
  kind: 'Default'
  identity: {
    type: 'SystemAssigned'
  }
  sku: {
    name: 'Basic'
    tier: 'Basic'
  }
  properties: {
    friendlyName: workspaceName
    storageAccount: storageAccount.id
    keyVault: keyVault.id
    applicationInsights: applicationInsights.id
    containerRegistry: enableContainerRegistry ? containerRegistry.id : null
    publicNetworkAccess: publicNetworkAccess
    hbiWorkspace: false
  }
}

output workspaceName string = workspace.name
output workspaceId string = workspace.id
output storageAccountName string = storageAccount.name
output storageAccountId string = storageAccount.id
output keyVaultName string = keyVault.name
output keyVaultId string = keyVault.id
output applicationInsightsName string = applicationInsights.name
output containerRegistryLoginServer string = enableContainerRegistry ? containerRegistry.properties.loginServer : ''
