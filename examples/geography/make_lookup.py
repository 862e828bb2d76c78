"""Build la_to_pfa.csv: local authority (ONS code) -> police force area (ONS code).

Run from this folder: ``python make_lookup.py``. No network: the inputs are transcribed
below from stored public sources (SOURCE.md), and the script checks that every authority
code it lists lands in exactly one force area.
"""

import csv

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
    for code, name in rows:
        if code.startswith("E09") and code != "E09000001":
            assert code not in force_of
            force_of[code] = "E23000001"
    missing = [name for code, name in rows if code not in force_of]
    assert not missing, f"no force area for {missing}"
    with open("la_to_pfa.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["LA_CODE", "LA_NAME", "PFA_CODE", "PFA_NAME"])
        for code, name in sorted(rows):
            writer.writerow([code, name, force_of[code], FORCES[force_of[code]]])


if __name__ == "__main__":
    main()
