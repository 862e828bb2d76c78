"""Build la_to_pfa.csv: local authority (ONS code) -> police force area (ONS code).

Run from this folder: ``python make_lookup.py``. No network: the inputs are transcribed
below from stored public sources (SOURCE.md), and the script checks that every authority
code it lists lands in exactly one force area. Each row also names the authority's upper
tier (UTLA_CODE: its county for a shire district, itself otherwise), so district-level
data can be counted in counties as well as force areas.

Each row also carries the authority's DfE three-digit code (DFE_CODE), the day its ONS code
came into use (STARTED, blank for codes in use when the nine-character codes began on
1 January 2009) and went out of use (ENDED), and the codes that replaced it (REPLACED_BY),
read from the stored copy of the DfE's own list in sources/dfe_screener_las.csv
(SOURCE.md). Upper-tier authorities abolished since 2009 (the 2009 unitaries' counties,
Bournemouth, Poole and Dorset 2019, Buckinghamshire 2020, Northamptonshire 2021) are
rows too, each in the force area of the authorities that replaced it: the script checks
that all of an abolished authority's successors lie in one force area.
"""

import csv
from pathlib import Path

# ONS codes and names of local authority districts, April 2021 (LAD21CD, LAD21NM): the
# unitary authorities (E06), metropolitan districts (E08), London boroughs (E09) and Welsh
# principal areas (W06), which are both lower and upper tier. Transcribed from
# data-to-insight/quality-lac-data-beta src/data/la_map.csv (commit 75eb58e).
AUTHORITIES = """\
E06000001,Hartlepool
E06000002,Middlesbrough
E06000003,Redcar and Cleveland
E06000004,Stockton-on-Tees
E06000005,Darlington
E06000006,Halton
E06000007,Warrington
E06000008,Blackburn with Darwen
E06000009,Blackpool
E06000010,"Kingston upon Hull, City of"
E06000011,East Riding of Yorkshire
E06000012,North East Lincolnshire
E06000013,North Lincolnshire
E06000014,York
E06000015,Derby
E06000016,Leicester
E06000017,Rutland
E06000018,Nottingham
E06000019,"Herefordshire, County of"
E06000020,Telford and Wrekin
E06000021,Stoke-on-Trent
E06000022,Bath and North East Somerset
E06000023,"Bristol, City of"
E06000024,North Somerset
E06000025,South Gloucestershire
E06000026,Plymouth
E06000027,Torbay
E06000030,Swindon
E06000031,Peterborough
E06000032,Luton
E06000033,Southend-on-Sea
E06000034,Thurrock
E06000035,Medway
E06000036,Bracknell Forest
E06000037,West Berkshire
E06000038,Reading
E06000039,Slough
E06000040,Windsor and Maidenhead
E06000041,Wokingham
E06000042,Milton Keynes
E06000043,Brighton and Hove
E06000044,Portsmouth
E06000045,Southampton
E06000046,Isle of Wight
E06000047,County Durham
E06000049,Cheshire East
E06000050,Cheshire West and Chester
E06000051,Shropshire
E06000052,Cornwall
E06000053,Isles of Scilly
E06000054,Wiltshire
E06000055,Bedford
E06000056,Central Bedfordshire
E06000057,Northumberland
E06000058,"Bournemouth, Christchurch and Poole"
E06000059,Dorset
E06000060,Buckinghamshire
E06000061,North Northamptonshire
E06000062,West Northamptonshire
E08000001,Bolton
E08000002,Bury
E08000003,Manchester
E08000004,Oldham
E08000005,Rochdale
E08000006,Salford
E08000007,Stockport
E08000008,Tameside
E08000009,Trafford
E08000010,Wigan
E08000011,Knowsley
E08000012,Liverpool
E08000013,St. Helens
E08000014,Sefton
E08000015,Wirral
E08000016,Barnsley
E08000017,Doncaster
E08000018,Rotherham
E08000019,Sheffield
E08000021,Newcastle upon Tyne
E08000022,North Tyneside
E08000023,South Tyneside
E08000024,Sunderland
E08000025,Birmingham
E08000026,Coventry
E08000027,Dudley
E08000028,Sandwell
E08000029,Solihull
E08000030,Walsall
E08000031,Wolverhampton
E08000032,Bradford
E08000033,Calderdale
E08000034,Kirklees
E08000035,Leeds
E08000036,Wakefield
E08000037,Gateshead
E09000001,City of London
E09000002,Barking and Dagenham
E09000003,Barnet
E09000004,Bexley
E09000005,Brent
E09000006,Bromley
E09000007,Camden
E09000008,Croydon
E09000009,Ealing
E09000010,Enfield
E09000011,Greenwich
E09000012,Hackney
E09000013,Hammersmith and Fulham
E09000014,Haringey
E09000015,Harrow
E09000016,Havering
E09000017,Hillingdon
E09000018,Hounslow
E09000019,Islington
E09000020,Kensington and Chelsea
E09000021,Kingston upon Thames
E09000022,Lambeth
E09000023,Lewisham
E09000024,Merton
E09000025,Newham
E09000026,Redbridge
E09000027,Richmond upon Thames
E09000028,Southwark
E09000029,Sutton
E09000030,Tower Hamlets
E09000031,Waltham Forest
E09000032,Wandsworth
E09000033,Westminster
W06000001,Isle of Anglesey
W06000002,Gwynedd
W06000003,Conwy
W06000004,Denbighshire
W06000005,Flintshire
W06000006,Wrexham
W06000008,Ceredigion
W06000009,Pembrokeshire
W06000010,Carmarthenshire
W06000011,Swansea
W06000012,Neath Port Talbot
W06000013,Bridgend
W06000014,Vale of Glamorgan
W06000015,Cardiff
W06000016,Rhondda Cynon Taf
W06000018,Caerphilly
W06000019,Blaenau Gwent
W06000020,Torfaen
W06000021,Monmouthshire
W06000022,Newport
W06000023,Powys
W06000024,Merthyr Tydfil
"""

# The shire counties (E10) of April 2021 and their districts (E07), transcribed from
# mysociety/uk_local_authority_names_and_codes, data/packages/_published/data/
# uk_la_past_current/1.6.0/uk_local_authorities_current.csv (commit 7273419), which
# compiles the ONS register of local authority codes (GSS codes) with the councils'
# county membership. Counties: registry code, ONS code, name, SNAC (ONS old-style)
# code. Districts: ONS code, name, its county's registry code (column county-la), SNAC
# code (blank for the districts made in 2019, which never had one). Only authorities in
# place on 1 April 2021 are listed: the Dorset (2019), Suffolk and Somerset West (2019)
# and Buckinghamshire (2020) predecessors and the Northamptonshire districts (abolished
# 1 April 2021) are not; the Cumbria, North Yorkshire and Somerset counties and
# districts (abolished 1 April 2023) are.
COUNTIES = """\
CAM,E10000003,Cambridgeshire,12
CMA,E10000006,Cumbria,16
DBY,E10000007,Derbyshire,17
DEV,E10000008,Devon,18
ESX,E10000011,East Sussex,21
ESS,E10000012,Essex,22
GLS,E10000013,Gloucestershire,23
HAM,E10000014,Hampshire,24
HRT,E10000015,Hertfordshire,26
KEN,E10000016,Kent,29
LAN,E10000017,Lancashire,30
LEC,E10000018,Leicestershire,31
LIN,E10000019,Lincolnshire,32
NFK,E10000020,Norfolk,33
NYK,E10000023,North Yorkshire,36
NTT,E10000024,Nottinghamshire,37
OXF,E10000025,Oxfordshire,38
SOM,E10000027,Somerset,40
STS,E10000028,Staffordshire,41
SFK,E10000029,Suffolk,42
SRY,E10000030,Surrey,43
WAR,E10000031,Warwickshire,44
WSX,E10000032,West Sussex,45
WOR,E10000034,Worcestershire,47
"""
DISTRICTS = """\
E07000223,Adur,WSX,45UB
E07000026,Allerdale,CMA,16UB
E07000032,Amber Valley,DBY,17UB
E07000224,Arun,WSX,45UC
E07000105,Ashford,KEN,29UB
E07000170,Ashfield,NTT,37UB
E07000200,Babergh,SFK,42UB
E07000171,Bassetlaw,NTT,37UC
E07000066,Basildon,ESS,22UB
E07000084,Basingstoke and Deane,HAM,24UB
E07000027,Barrow-in-Furness,CMA,16UC
E07000129,Blaby,LEC,31UB
E07000033,Bolsover,DBY,17UC
E07000136,Boston,LIN,32UB
E07000067,Braintree,ESS,22UC
E07000143,Breckland,NFK,33UB
E07000234,Bromsgrove,WOR,47UB
E07000144,Broadland,NFK,33UC
E07000172,Broxtowe,NTT,37UD
E07000068,Brentwood,ESS,22UD
E07000095,Broxbourne,HRT,26UB
E07000117,Burnley,LAN,30UD
E07000008,Cambridge,CAM,12UB
E07000192,Cannock Chase,STS,41UB
E07000028,Carlisle,CMA,16UD
E07000069,Castle Point,ESS,22UE
E07000106,Canterbury,KEN,29UC
E07000130,Charnwood,LEC,31UC
E07000225,Chichester,WSX,45UD
E07000070,Chelmsford,ESS,22UF
E07000118,Chorley,LAN,30UE
E07000177,Cherwell,OXF,38UB
E07000034,Chesterfield,DBY,17UD
E07000078,Cheltenham,GLS,23UB
E07000071,Colchester,ESS,22UG
E07000029,Copeland,CMA,16UE
E07000079,Cotswold,GLS,23UC
E07000163,Craven,NYK,36UB
E07000226,Crawley,WSX,45UE
E07000096,Dacorum,HRT,26UC
E07000107,Dartford,KEN,29UD
E07000035,Derbyshire Dales,DBY,17UF
E07000108,Dover,KEN,29UE
E07000061,Eastbourne,ESX,21UC
E07000086,Eastleigh,HAM,24UD
E07000009,East Cambridgeshire,CAM,12UC
E07000040,East Devon,DEV,18UB
E07000030,Eden,CMA,16UF
E07000085,East Hampshire,HAM,24UC
E07000242,East Hertfordshire,HRT,26UD
E07000137,East Lindsey,LIN,32UC
E07000207,Elmbridge,SRY,43UB
E07000072,Epping Forest,ESS,22UH
E07000208,Epsom and Ewell,SRY,43UC
E07000036,Erewash,DBY,17UG
E07000244,East Suffolk,SFK,
E07000193,East Staffordshire,STS,41UC
E07000041,Exeter,DEV,18UC
E07000087,Fareham,HAM,24UE
E07000010,Fenland,CAM,12UD
E07000080,Forest of Dean,GLS,23UD
E07000119,Fylde,LAN,30UF
E07000173,Gedling,NTT,37UE
E07000081,Gloucester,GLS,23UE
E07000088,Gosport,HAM,24UF
E07000109,Gravesham,KEN,29UG
E07000209,Guildford,SRY,43UD
E07000145,Great Yarmouth,NFK,33UD
E07000090,Havant,HAM,24UH
E07000164,Hambleton,NYK,36UC
E07000165,Harrogate,NYK,36UD
E07000131,Harborough,LEC,31UD
E07000073,Harlow,ESS,22UJ
E07000062,Hastings,ESX,21UD
E07000089,Hart,HAM,24UG
E07000098,Hertsmere,HRT,26UE
E07000037,High Peak,DBY,17UH
E07000132,Hinckley and Bosworth,LEC,31UE
E07000227,Horsham,WSX,45UF
E07000011,Huntingdonshire,CAM,12UE
E07000120,Hyndburn,LAN,30UG
E07000202,Ipswich,SFK,42UD
E07000146,Kings Lynn and West Norfolk,NFK,33UE
E07000121,Lancaster,LAN,30UH
E07000063,Lewes,ESX,21UF
E07000138,City of Lincoln,LIN,32UD
E07000194,Lichfield,STS,41UD
E07000110,Maidstone,KEN,29UH
E07000074,Maldon,ESS,22UK
E07000174,Mansfield,NTT,37UF
E07000235,Malvern Hills,WOR,47UC
E07000042,Mid Devon,DEV,18UD
E07000133,Melton,LEC,31UG
E07000187,Mendip,SOM,40UB
E07000210,Mole Valley,SRY,43UE
E07000228,Mid Sussex,WSX,45UG
E07000203,Mid Suffolk,SFK,42UE
E07000043,North Devon,DEV,18UE
E07000175,Newark and Sherwood,NTT,37UG
E07000195,Newcastle-under-Lyme,STS,41UE
E07000038,North East Derbyshire,DBY,17UJ
E07000091,New Forest,HAM,24UJ
E07000099,North Hertfordshire,HRT,26UF
E07000139,North Kesteven,LIN,32UE
E07000147,North Norfolk,NFK,33UF
E07000148,Norwich,NFK,33UG
E07000219,Nuneaton and Bedworth,WAR,44UC
E07000218,North Warwickshire,WAR,44UB
E07000134,North West Leicestershire,LEC,31UH
E07000135,Oadby and Wigston,LEC,31UJ
E07000178,Oxford,OXF,38UC
E07000122,Pendle,LAN,30UJ
E07000123,Preston,LAN,30UK
E07000236,Redditch,WOR,47UD
E07000211,Reigate and Banstead,SRY,43UF
E07000124,Ribble Valley,LAN,30UL
E07000166,Richmondshire,NYK,36UE
E07000075,Rochford,ESS,22UL
E07000064,Rother,ESX,21UG
E07000125,Rossendale,LAN,30UM
E07000220,Rugby,WAR,44UD
E07000092,Rushmoor,HAM,24UL
E07000212,Runnymede,SRY,43UG
E07000176,Rushcliffe,NTT,37UJ
E07000167,Ryedale,NYK,36UF
E07000240,St Albans,HRT,26UG
E07000012,South Cambridgeshire,CAM,12UG
E07000168,Scarborough,NYK,36UG
E07000039,South Derbyshire,DBY,17UK
E07000188,Sedgemoor,SOM,40UC
E07000169,Selby,NYK,36UH
E07000111,Sevenoaks,KEN,29UK
E07000044,South Hams,DEV,18UG
E07000112,Folkestone and Hythe,KEN,29UL
E07000140,South Holland,LIN,32UF
E07000141,South Kesteven,LIN,32UG
E07000031,South Lakeland,CMA,16UG
E07000149,South Norfolk,NFK,33UH
E07000179,South Oxfordshire,OXF,38UD
E07000213,Spelthorne,SRY,43UH
E07000126,South Ribble,LAN,30UN
E07000189,South Somerset,SOM,40UD
E07000196,South Staffordshire,STS,41UF
E07000197,Stafford,STS,41UG
E07000198,Staffordshire Moorlands,STS,41UH
E07000082,Stroud,GLS,23UF
E07000221,Stratford-on-Avon,WAR,44UE
E07000243,Stevenage,HRT,26UH
E07000214,Surrey Heath,SRY,43UJ
E07000113,Swale,KEN,29UM
E07000246,Somerset West and Taunton,SOM,
E07000215,Tandridge,SRY,43UK
E07000199,Tamworth,STS,41UK
E07000045,Teignbridge,DEV,18UH
E07000076,Tendring,ESS,22UN
E07000093,Test Valley,HAM,24UN
E07000083,Tewkesbury,GLS,23UG
E07000114,Thanet,KEN,29UN
E07000102,Three Rivers,HRT,26UJ
E07000115,Tonbridge and Malling,KEN,29UP
E07000046,Torridge,DEV,18UK
E07000116,Tunbridge Wells,KEN,29UQ
E07000077,Uttlesford,ESS,22UQ
E07000180,Vale of White Horse,OXF,38UE
E07000216,Waverley,SRY,43UL
E07000103,Watford,HRT,26UK
E07000222,Warwick,WAR,44UF
E07000047,West Devon,DEV,18UL
E07000065,Wealden,ESX,21UH
E07000241,Welwyn Hatfield,HRT,26UL
E07000094,Winchester,HAM,24UP
E07000127,West Lancashire,LAN,30UP
E07000142,West Lindsey,LIN,32UH
E07000237,Worcester,WOR,47UE
E07000217,Woking,SRY,43UM
E07000229,Worthing,WSX,45UH
E07000181,West Oxfordshire,OXF,38UF
E07000245,West Suffolk,SFK,
E07000238,Wychavon,WOR,47UF
E07000239,Wyre Forest,WOR,47UG
E07000128,Wyre,LAN,30UQ
"""
# The unitary authorities of 1 April 2023 that replaced three of the counties above
# (same source: their ONS codes, and the counties' column replaced-by), each in the
# force area of the county it replaced: ONS code, name, the county's registry code.
SUCCESSORS = """\
E06000063,Cumberland,CMA
E06000064,Westmorland and Furness,CMA
E06000065,North Yorkshire,NYK
E06000066,Somerset,SOM
"""

# Successions of upper-tier authorities since 2009: ONS code -> the codes that replaced it.
# The dates come from the DfE list (sources/dfe_screener_las.csv: date_of_termination of the
# old code, date_of_operation of the new); which authority replaced which is fixed by the
# structural changes orders (SOURCE.md). A minor boundary change recodes an authority
# (Northumberland and Gateshead 2013, Barnsley and Sheffield 2025) with the same DfE code.
REPLACED_BY = {
    "E10000001": ("E06000055", "E06000056"),  # Bedfordshire 2009: Bedford, Central Bedfordshire
    "E10000004": ("E06000049", "E06000050"),  # Cheshire 2009: Cheshire East, Cheshire West and Chester
    "E10000005": ("E06000052", "E06000053"),  # Cornwall and Isles of Scilly 2009
    "E10000010": ("E06000047",),  # Durham 2009: County Durham
    "E10000022": ("E06000048",),  # Northumberland county 2009: Northumberland unitary
    "E10000026": ("E06000051",),  # Shropshire 2009
    "E10000033": ("E06000054",),  # Wiltshire 2009
    "E06000048": ("E06000057",),  # Northumberland, recoded 2013
    "E08000020": ("E08000037",),  # Gateshead, recoded 2013
    "E06000028": ("E06000058",),  # Bournemouth 2019: Bournemouth, Christchurch and Poole
    "E06000029": ("E06000058",),  # Poole 2019
    "E10000009": ("E06000058", "E06000059"),  # Dorset county 2019 (Christchurch went to BCP)
    "E10000002": ("E06000060",),  # Buckinghamshire county 2020: Buckinghamshire unitary
    "E10000021": ("E06000061", "E06000062"),  # Northamptonshire 2021: North and West Northamptonshire
    "E10000006": ("E06000063", "E06000064"),  # Cumbria 2023: Cumberland, Westmorland and Furness
    "E10000023": ("E06000065",),  # North Yorkshire county 2023: North Yorkshire unitary
    "E10000027": ("E06000066",),  # Somerset county 2023: Somerset unitary
    "E08000016": ("E08000038",),  # Barnsley, recoded 2025
    "E08000019": ("E08000039",),  # Sheffield, recoded 2025
    # the districts of the counties abolished in 2023 (Cumbria's split along district lines)
    "E07000026": ("E06000063",), "E07000028": ("E06000063",), "E07000029": ("E06000063",),
    "E07000027": ("E06000064",), "E07000030": ("E06000064",), "E07000031": ("E06000064",),
    **{code: ("E06000065",) for code in ("E07000163", "E07000164", "E07000165", "E07000166", "E07000167",
                                         "E07000168", "E07000169")},
    **{code: ("E06000066",) for code in ("E07000187", "E07000188", "E07000189", "E07000246")},
}
#: the day the districts of Cumbria, North Yorkshire and Somerset ceased (not in the DfE list)
DISTRICTS_ENDED_2023 = "2023-03-31"
#: a DfE three-digit code is read as the ONS code its authority had on this day (GIAS's vintage)
DFE_CODE_VINTAGE = "2024-04-01"
SCREENER = Path(__file__).resolve().parent / "sources" / "dfe_screener_las.csv"

# Police force areas: ONS code and name.
FORCES = {
    "E23000001": "Metropolitan Police", "E23000002": "Cumbria", "E23000003": "Lancashire",
    "E23000004": "Merseyside", "E23000005": "Greater Manchester", "E23000006": "Cheshire",
    "E23000007": "Northumbria", "E23000008": "Durham", "E23000009": "North Yorkshire",
    "E23000010": "West Yorkshire", "E23000011": "South Yorkshire", "E23000012": "Humberside",
    "E23000013": "Cleveland", "E23000014": "West Midlands", "E23000015": "Staffordshire",
    "E23000016": "West Mercia", "E23000017": "Warwickshire", "E23000018": "Derbyshire",
    "E23000019": "Nottinghamshire", "E23000020": "Lincolnshire", "E23000021": "Leicestershire",
    "E23000022": "Northamptonshire", "E23000023": "Cambridgeshire", "E23000024": "Norfolk",
    "E23000025": "Suffolk", "E23000026": "Bedfordshire", "E23000027": "Hertfordshire",
    "E23000028": "Essex", "E23000029": "Thames Valley", "E23000030": "Hampshire",
    "E23000031": "Surrey", "E23000032": "Kent", "E23000033": "Sussex",
    "E23000034": "London, City of", "E23000035": "Devon & Cornwall", "E23000036": "Avon and Somerset",
    "E23000037": "Gloucestershire", "E23000038": "Wiltshire", "E23000039": "Dorset",
    "W15000001": "North Wales", "W15000002": "Gwent", "W15000003": "South Wales", "W15000004": "Dyfed-Powys",
}

# Schedule 1 to the Police Act 1996 (as amended), as transcribed in mysociety/mapit
# data/UK/police_areas_england_wales.py, restricted to the authorities above. Later
# reorganisations follow the areas the Schedule names: Bournemouth, Christchurch and
# Poole and the Dorset unitary (2019) cover the old county of Dorset and Bournemouth and
# Poole (Dorset); the Buckinghamshire unitary (2020) the county of Buckinghamshire
# (Thames Valley); North and West Northamptonshire (2021) the county of Northamptonshire.
MEMBERS = {
    "E23000036": ["Bath and North East Somerset", "Bristol, City of", "North Somerset", "South Gloucestershire"],
    "E23000026": ["Bedford", "Central Bedfordshire", "Luton"],
    "E23000023": ["Peterborough"],
    "E23000006": ["Cheshire East", "Cheshire West and Chester", "Halton", "Warrington"],
    "E23000034": ["City of London"],
    "E23000013": ["Hartlepool", "Middlesbrough", "Redcar and Cleveland", "Stockton-on-Tees"],
    "E23000018": ["Derby"],
    "E23000035": ["Cornwall", "Plymouth", "Torbay", "Isles of Scilly"],
    "E23000039": ["Bournemouth, Christchurch and Poole", "Dorset"],
    "E23000008": ["County Durham", "Darlington"],
    "W15000004": ["Ceredigion", "Carmarthenshire", "Pembrokeshire", "Powys"],
    "E23000028": ["Southend-on-Sea", "Thurrock"],
    "E23000005": ["Bolton", "Bury", "Manchester", "Oldham", "Rochdale", "Salford", "Stockport", "Tameside",
                  "Trafford", "Wigan"],
    "W15000002": ["Monmouthshire", "Blaenau Gwent", "Caerphilly", "Newport", "Torfaen"],
    "E23000030": ["Isle of Wight", "Portsmouth", "Southampton"],
    "E23000012": ["East Riding of Yorkshire", "Kingston upon Hull, City of", "North East Lincolnshire",
                  "North Lincolnshire"],
    "E23000032": ["Medway"],
    "E23000003": ["Blackburn with Darwen", "Blackpool"],
    "E23000021": ["Leicester", "Rutland"],
    "E23000004": ["Knowsley", "Liverpool", "St. Helens", "Sefton", "Wirral"],
    "E23000022": ["North Northamptonshire", "West Northamptonshire"],
    "E23000007": ["Northumberland", "Gateshead", "Newcastle upon Tyne", "North Tyneside", "South Tyneside",
                  "Sunderland"],
    "W15000001": ["Isle of Anglesey", "Gwynedd", "Denbighshire", "Flintshire", "Conwy", "Wrexham"],
    "E23000009": ["York"],
    "E23000019": ["Nottingham"],
    "W15000003": ["Cardiff", "Swansea", "Bridgend", "Merthyr Tydfil", "Neath Port Talbot", "Rhondda Cynon Taf",
                  "Vale of Glamorgan"],
    "E23000011": ["Barnsley", "Doncaster", "Rotherham", "Sheffield"],
    "E23000015": ["Stoke-on-Trent"],
    "E23000033": ["Brighton and Hove"],
    "E23000029": ["Bracknell Forest", "Reading", "Slough", "West Berkshire", "Windsor and Maidenhead", "Wokingham",
                  "Milton Keynes", "Buckinghamshire"],
    "E23000016": ["Shropshire", "Herefordshire, County of", "Telford and Wrekin"],
    "E23000014": ["Birmingham", "Coventry", "Dudley", "Sandwell", "Solihull", "Walsall", "Wolverhampton"],
    "E23000010": ["Bradford", "Calderdale", "Kirklees", "Leeds", "Wakefield"],
    "E23000038": ["Wiltshire", "Swindon"],
}


# The counties in Schedule 1 to the Police Act 1996 (mysociety/mapit, as above: the
# force areas described as "the county of ..."), by the county names above.
COUNTY_FORCES = {
    "E23000023": ["Cambridgeshire"], "E23000002": ["Cumbria"], "E23000018": ["Derbyshire"],
    "E23000035": ["Devon"], "E23000033": ["East Sussex", "West Sussex"], "E23000028": ["Essex"],
    "E23000037": ["Gloucestershire"], "E23000030": ["Hampshire"], "E23000027": ["Hertfordshire"],
    "E23000032": ["Kent"], "E23000003": ["Lancashire"], "E23000021": ["Leicestershire"],
    "E23000020": ["Lincolnshire"], "E23000024": ["Norfolk"], "E23000009": ["North Yorkshire"],
    "E23000019": ["Nottinghamshire"], "E23000029": ["Oxfordshire"], "E23000036": ["Somerset"],
    "E23000015": ["Staffordshire"], "E23000025": ["Suffolk"], "E23000031": ["Surrey"],
    "E23000017": ["Warwickshire"], "E23000016": ["Worcestershire"],
}


def two_tier_rows(force_of: dict) -> list[list[str]]:
    """Counties, their districts and the 2023 unitaries: [code, name, force, upper-tier code, name].

    A district is counted in its county's force area: the Schedule names force areas by
    counties, so a district's force area is its county's, and the check below that a
    district's SNAC code starts with its county's SNAC code guards the transcription.
    """
    counties = {reg: (code, name, snac) for reg, code, name, snac in csv.reader(COUNTIES.splitlines())}
    county_force = {}
    for force, names in COUNTY_FORCES.items():
        for name in names:
            (reg,) = [r for r, (_, n, _) in counties.items() if n == name]
            assert reg not in county_force, f"{name} is in two force areas"
            county_force[reg] = force
    assert set(county_force) == set(counties), f"no force area for {set(counties) - set(county_force)}"
    rows = []
    for reg, (code, name, _) in counties.items():
        assert code.startswith("E10") and code not in force_of
        rows.append([code, name, county_force[reg], code, name])
    for code, name, reg, snac in csv.reader(DISTRICTS.splitlines()):
        county_code, county_name, county_snac = counties[reg]  # KeyError: a district of no county above
        assert code.startswith("E07") and code not in force_of
        assert not snac or snac[:2] == county_snac, f"{name} ({snac}) is not in {county_name} ({county_snac})"
        rows.append([code, name, county_force[reg], county_code, county_name])
    for code, name, reg in csv.reader(SUCCESSORS.splitlines()):
        assert code.startswith("E06") and code not in force_of
        rows.append([code, name, county_force[reg], code, name])
    assert len({r[0] for r in rows}) == len(rows), "an authority is listed twice"
    return rows


def main() -> None:
    rows = list(csv.reader(AUTHORITIES.splitlines()))
    by_name = {name: code for code, name in rows}
    force_of = {}
    for force, names in MEMBERS.items():
        for name in names:
            code = by_name[name]  # KeyError: a name that is not an authority above
            assert code not in force_of, f"{name} is in two force areas"
            force_of[code] = force
    # the London boroughs other than the City: the Metropolitan Police District
    for code, _name in rows:
        if code.startswith("E09") and code != "E09000001":
            assert code not in force_of
            force_of[code] = "E23000001"
    missing = [name for code, name in rows if code not in force_of]
    assert not missing, f"no force area for {missing}"
    # unitary authorities are their own upper tier
    table = [[code, name, force_of[code], code, name] for code, name in rows] + two_tier_rows(force_of)
    table += former_rows(table)
    dates = screener_dates()
    with open("la_to_pfa.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["LA_CODE", "LA_NAME", "PFA_CODE", "PFA_NAME", "UTLA_CODE", "UTLA_NAME", "DFE_CODE", "STARTED",
                         "ENDED", "REPLACED_BY"])
        for code, name, force, upper, upper_name in sorted(table):
            dfe, started, ended = dates.get(code, ("", "", ""))
            if not ended and code in REPLACED_BY:
                assert code.startswith("E07"), f"{code} is replaced but the DfE list does not end it"
                ended = DISTRICTS_ENDED_2023
            writer.writerow([code, name, force, FORCES[force], upper, upper_name, dfe, started, ended,
                             " ".join(REPLACED_BY.get(code, ()))])
    check_dfe_codes(table, dates)


def _iso(day_month_year: str) -> str:
    day, month, year = day_month_year.split("/")
    return f"{year}-{month}-{day}"


def screener_dates() -> dict:
    """ONS code -> (DfE code, STARTED, ENDED) from the stored DfE list (one code per row only)."""
    out = {}
    with open(SCREENER, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            code = row["new_la_code"]
            if "/" in code or not code.startswith("E"):  # combined rows ("E06000061 / E06000062") and "z"
                continue
            dfe = row["old_la_code"] if row["old_la_code"] != "x" else ""
            started = "" if row["date_of_operation"] == "01/01/2009" else _iso(row["date_of_operation"])
            ended = _iso(row["date_of_termination"]) if row["date_of_termination"] else ""
            assert (row["status"] == "terminated") == bool(ended), code
            out[code] = (dfe, started, ended)
    return out


def former_rows(table: list) -> list:
    """Rows for the codes the DfE list ends before the lookup's vintage, or starts after it.

    Each lands in the force area of the authorities that replaced it (or, for a recoded
    authority, of the code it replaced), and every successor must lie in that one force
    area: force boundaries did not move with these changes.
    """
    force_of = {row[0]: row[2] for row in table}
    dates = screener_dates()
    names = {}
    with open(SCREENER, newline="", encoding="utf-8") as handle:
        names = {row["new_la_code"]: row["la_name"] for row in csv.DictReader(handle)}
    added = []
    pending = [code for code in REPLACED_BY if code not in force_of]
    for _ in range(len(pending) + 1):  # successors may themselves be former (E10000022 -> E06000048)
        for code in list(pending):
            successors = REPLACED_BY[code]
            if all(s in force_of for s in successors):
                forces = {force_of[s] for s in successors}
                assert len(forces) == 1, f"{code}'s successors {successors} lie in several force areas {forces}"
                assert dates[code][2], f"{code} is replaced but the DfE list does not end it"
                force_of[code] = forces.pop()
                added.append([code, names[code], force_of[code], code, names[code]])
                pending.remove(code)
    assert not pending, f"no force area for {pending}"
    # codes that replaced one of the lookup's authorities after its vintage (same area, same force)
    for old, successors in REPLACED_BY.items():
        for code in successors:
            if code not in force_of:
                force_of[code] = force_of[old]
                added.append([code, names[code], force_of[old], code, names[code]])
    return added


def check_dfe_codes(table: list, dates: dict) -> None:
    """Every DfE code in the list names exactly one authority on DFE_CODE_VINTAGE."""
    held = {row[0] for row in table}
    by_dfe: dict = {}
    for code, (dfe, started, ended) in dates.items():
        assert code in held, f"{code} is in the DfE list but not in the lookup"
        if dfe and (not started or started <= DFE_CODE_VINTAGE) and (not ended or ended >= DFE_CODE_VINTAGE):
            assert dfe not in by_dfe, f"DfE code {dfe} names both {by_dfe[dfe]} and {code} on {DFE_CODE_VINTAGE}"
            by_dfe[dfe] = code


if __name__ == "__main__":
    main()
